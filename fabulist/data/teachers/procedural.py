"""The offline procedural teacher: a story grammar that writes a whole moral fable from six elements.

    .venv/bin/python benchmarks/procedural_teacher.py      # speed, diversity and length report

No model and no network: a fable is a walk through a grammar driven by one seed, so a 100k-fable corpus
costs seconds and is the same on any machine (random.Random(seed) only, never hash()). The beats: an
opening (the character with its trait, in the setting, 2-4 sentences), the problem and what the hero must
do, one or two turning points (advice from an elder, a failed first try, a temptation, a talk with the
friend, bad weather), the work and the resolution, a short closing, and the final line `Moral: <text>`.

Grammar notation (rules in _RULES, compiled once at import into functions that build f-strings):
    [rule]   a random alternative of another rule, drawn anew at every use
    [^rule]  the same, with its first letter capitalised
    {slot}   a value fixed for the whole fable: {hero} "the fox", {he} {him} {his} {himself}, {friend}
             "the tortoise", {f_he} ..., {wise} the elder, {w_he} ..., {trait}, {at}, {sight1} ...
    {Slot}   the same value with a capital first letter
Diversity: self-BLEU counts every word run that some other fable also contains, so frames are short
runs of independent choices, and each fable repeats details that are rare across fables (names, a named
spot, the hero's treasured thing and exclamation, the friend's nature, the day, a passer-by) in changing
company. The verbatim element text alone sets a floor (see the benchmark's report).

Length is `len(text.split())` (whitespace words, the Moral line included): always 120-300, and aimed at a
per-fable goal within TARGET_WORDS by adding optional sentences while they fit.
"""

from __future__ import annotations

import itertools
import random
import re
import time
from collections.abc import Iterable, Iterator

from fabulist.data import elements as el
from fabulist.data.records import fable_record
from fabulist.data.teachers.base import Budget, Outcome

MIN_WORDS, MAX_WORDS = 120, 300  # guaranteed bounds
# Aimed-for bounds, those the pipeline's prompts ask a teacher for: each fable gets a goal within them.
TARGET_WORDS = (150, 250)


def _article(word: str) -> str:
    """The article for the words this module adds itself (none of them start with a silent h or a 'you')."""
    return "an" if word[:1] in "aeiou" else "a"


# fmt: off
# ---------------------------------------------------------------------------------------------------------
# Word lists for the per-fable details: names, the hero's treasured thing, a named spot, the day, ...
# ---------------------------------------------------------------------------------------------------------
_NAMES = {
    "she": (
        "Rosie", "Lily", "Daisy", "Bella", "Mabel", "Tilly", "Ruby", "Molly", "Elsie", "Nora", "Ivy",
        "Lottie", "Hattie", "Greta", "Mira", "Luna", "Stella", "Ada", "Iris", "Penny", "Olive", "Poppy",
        "Maisie", "Flora", "Dot", "Wren", "Tess", "Bea", "Amara", "Priya", "Mei", "Sofia", "Zara", "Nia",
        "Layla", "Hana", "Yara", "Esme", "Freya", "Edie", "Cora", "Lucy", "Alice", "Matilda", "Josie",
        "Kitty", "Nell", "Rita", "Gemma", "Lola", "Anya", "Kiki", "Tula", "Mimi", "Suki", "Aisha", "Leila",
        "Rosa", "Clara", "Gracie", "Millie", "Winnie", "Hetty", "Pearl", "Opal", "Violet", "Lulu",
        "Marigold", "Delphine", "Celeste", "Fatima", "Ines", "Lena", "Maya", "Noor", "Keiko", "Talia",
        "Vera", "Agnes", "Bridget", "Dora", "Ellie", "Fiona", "Gwen", "Heidi", "Isla", "Jade", "Kira",
    ),
    "he": (
        "Sam", "Tom", "Benny", "Max", "Oscar", "Leo", "Freddie", "Ollie", "Jasper", "Felix", "Otis",
        "Alfie", "Rufus", "Hugo", "Milo", "Theo", "Barney", "Teddy", "Arlo", "Ned", "Toby", "Finn", "Gus",
        "Bertie", "Ziggy", "Monty", "Cyril", "Percy", "Omar", "Ravi", "Kenji", "Mateo", "Tariq", "Kofi",
        "Idris", "Luca", "Marco", "Pablo", "Sami", "Yusuf", "Ben", "Jack", "Harry", "Charlie", "Archie",
        "Stanley", "Walter", "Eddie", "Louie", "Frankie", "Bobby", "Danny", "Georgie", "Henry", "Ivan",
        "Jonah", "Kit", "Len", "Morris", "Norman", "Albert", "Boris", "Chester", "Dexter", "Elmo",
        "Fergus", "Gilbert", "Horace", "Kai", "Lenny", "Murphy", "Nico", "Orson", "Pedro", "Quentin",
        "Roscoe", "Sid", "Timo", "Vinnie", "Wally", "Zeke", "Abel", "Bruno", "Cosmo", "Dino", "Emil",
    ),
    "any": (
        "Pip", "Bramble", "Juniper", "Sunny", "Pebble", "Hazel", "Clover", "Willow", "Nutmeg", "Sprout",
        "Acorn", "Pepper", "Ginger", "Button", "Bean", "Fern", "Basil", "Sage", "Rowan", "Quill", "Maple",
        "Biscuit", "Tumble", "Dusty", "Cricket", "Moss", "Puddle", "Thistle", "Honey", "Sparrow", "Scout",
        "Sky", "Robin", "Ash", "Berry", "Cocoa", "Dandy", "Echo", "Fizz", "Gem", "Hopper", "Kip", "Lark",
        "Misty", "Nibbles", "Oakley", "Patch", "Tansy", "Twig", "Velvet", "Zephyr", "Bubbles", "Crumb",
        "Dewdrop", "Flicker", "Jelly", "Marble", "Noodle", "Peanut", "Pickle", "Pudding", "Rusty",
        "Skipper", "Tinker", "Toffee", "Truffle", "Waffle", "Sorrel", "Bracken", "Mallow", "Pinecone",
    ),
}  # fmt: skip
_PROP_ADJ = (
    "red", "blue", "yellow", "green", "purple", "orange", "pink", "silver", "golden", "striped", "spotted",
    "tiny", "shiny", "old", "little", "bright", "patchwork", "sky-blue", "cherry-red", "lemon-yellow",
)  # fmt: skip
_PROP_NOUN = (
    "kite", "scarf", "hat", "ball", "drum", "whistle", "basket", "lantern", "pebble", "shell", "feather",
    "ribbon", "cup", "blanket", "bell", "marble", "button", "spinning top", "umbrella", "bucket", "flute",
    "notebook", "map", "compass", "teapot", "bag", "kettle", "paintbrush", "yo-yo", "harmonica",
)  # fmt: skip
_FRIEND_ADJ = (
    "shy", "gentle", "cheerful", "young", "tiny", "chatty", "sleepy", "quiet", "old", "clever", "jolly",
    "timid", "busy", "little", "kind", "playful", "curious", "eager", "merry", "small", "bouncy", "dreamy",
    "giggly", "thoughtful", "bashful", "sprightly", "talkative", "wise", "funny", "hungry",
)  # fmt: skip
_HERO_SMALL = ("little ", "young ", "small ", "", "")
_FOOD_ADJ = ("sweet", "fresh", "golden", "homemade", "warm", "tasty", "tiny", "plump", "sticky", "rosy")
_FOOD = (
    "honey buns",
    "seed cakes",
    "plums",
    "berry tarts",
    "acorn biscuits",
    "apple slices",
    "pancakes",
    "oat cakes",
    "cherries",
    "pear drops",
    "carrot muffins",
    "gooseberries",
    "raisin buns",
    "clover rolls",
    "fig rolls",
    "nut bread",
    "blueberries",
    "pumpkin pies",
    "jam tarts",
    "barley cakes",
    "grapes",
    "strawberries",
    "corn cakes",
    "raspberries",
    "dumplings",
    "rice balls",
    "apricots",
    "crumpets",
)
# A named spot in the setting ("Mossy Nook") and whimsical names ("Pebblewick"): combinations that are
# rare across fables, so every mention makes new word pairs.
_SPOT_A = (
    "Bramble",
    "Mossy",
    "Willow",
    "Sunny",
    "Thistle",
    "Clover",
    "Pebble",
    "Buttercup",
    "Hazel",
    "Maple",
    "Honey",
    "Misty",
    "Foxglove",
    "Bluebell",
    "Acorn",
    "Fern",
    "Primrose",
    "Dandelion",
    "Rosehip",
    "Snowdrop",
    "Juniper",
    "Nettle",
    "Heather",
    "Poppy",
    "Tumble",
    "Whistle",
    "Jingle",
    "Puddle",
    "Crooked",
    "Windy",
    "Sleepy",
    "Merry",
    "Dewdrop",
    "Copper",
    "Silver",
    "Golden",
    "Cobble",
    "Mulberry",
    "Pudding",
    "Cherry",
)
_SPOT_B = (
    "Corner",
    "Hollow",
    "Nook",
    "Patch",
    "Bend",
    "Hill",
    "Green",
    "Dell",
    "Glade",
    "Knoll",
    "End",
    "Row",
    "Lane",
    "Crossing",
    "Gate",
    "Field",
    "Bank",
    "Ridge",
    "Dip",
    "Hideaway",
    "Rise",
    "Cove",
    "Meadow",
    "Steps",
    "Well",
)
_NAME_A = (*_SPOT_A, "Apple", "Button", "Dapple", "Nutmeg", "Pepper", "Quill", "Toffee", "Saffron", "Tansy")
_NAME_B = (
    "kin",
    "wick",
    "by",
    "ton",
    "bell",
    "berry",
    "leaf",
    "sprout",
    "dew",
    "ling",
    "let",
    "kins",
    "worth",
    "wood",
    "brook",
    "dale",
    "well",
    "hop",
    "twig",
    "seed",
    "bud",
    "drop",
    "pip",
    "moss",
)
_DAYADJ = (
    "bright",
    "misty",
    "windy",
    "sunny",
    "cloudy",
    "quiet",
    "still",
    "breezy",
    "grey",
    "golden",
    "chilly",
    "warm",
    "cool",
    "foggy",
    "clear",
    "pleasant",
    "hazy",
    "drizzly",
    "silver",
    "dewy",
    "blustery",
    "gentle",
    "sleepy",
    "crisp",
    "muggy",
    "rosy",
    "pale",
    "soft",
    "lazy",
    "damp",
)
_DAYPART = ("morning", "afternoon", "evening", "day", "dawn", "morning", "afternoon", "noon")
# A fable-long exclamation of the hero ("Bouncing buttercups!"): rare across fables, so every use is new.
_CATCH_A = (
    "Bouncing",
    "Buzzing",
    "Galloping",
    "Jumping",
    "Wobbling",
    "Tumbling",
    "Twinkling",
    "Sizzling",
    "Dancing",
    "Giggling",
    "Hopping",
    "Jiggling",
    "Rattling",
    "Rolling",
    "Spinning",
    "Whistling",
    "Wiggling",
    "Zooming",
    "Bumbling",
    "Crackling",
    "Fluttering",
    "Puffing",
    "Rumbling",
    "Splashing",
    "Tickling",
    "Tingling",
    "Toppling",
    "Trundling",
    "Whirling",
    "Great",
    "Jolly",
    "Sweet",
    "Flying",
)
_CATCH_B = (
    "buttercups",
    "gooseberries",
    "pumpkins",
    "pickles",
    "puddles",
    "pancakes",
    "teapots",
    "turnips",
    "thimbles",
    "moonbeams",
    "marshmallows",
    "muffins",
    "noodles",
    "nutmegs",
    "pebbles",
    "raindrops",
    "snowflakes",
    "sunbeams",
    "dumplings",
    "biscuits",
    "bubbles",
    "cabbages",
    "carrots",
    "cherries",
    "daisies",
    "acorns",
    "jellybeans",
    "kettles",
    "lollipops",
    "parsnips",
    "plums",
    "radishes",
    "tadpoles",
    "trumpets",
    "walnuts",
    "crumpets",
    "fiddlesticks",
    "buttons",
    "bluebells",
    "cupcakes",
)
# The elder of the advice beat: (reference, introduction, pronoun or None to keep the character's own).
_WISE = (
    ("the wise old {w}", "a wise old {w}", None),
    ("the old {w}", "an old {w} who had seen many winters", None),
    ("Grandmother {W}", "Grandmother {W}, the oldest {w} for miles around", "she"),
    ("Grandfather {W}", "Grandfather {W}, a gentle old {w}", "he"),
    ("Granny {W}", "old Granny {W}", "she"),
    ("the clever old {w}", "a clever old {w}", None),
    ("the kind old {w}", "a kind old {w}", None),
    ("Uncle {W}", "old Uncle {W}", "he"),
    ("Auntie {W}", "old Auntie {W}", "she"),
    ("the oldest {w}", "the oldest {w} {at}", None),
)
# Used when the shipped character list is too short to cast a different friend and elder.
_SPARE = (
    el.Character("tortoise", "tortoise", "a", "tortoises", "he"),
    el.Character("owl", "owl", "an", "owls", "she"),
    el.Character("hedgehog", "hedgehog", "a", "hedgehogs", "he"),
)


# ---------------------------------------------------------------------------------------------------------
# Lexicon and sentence frames. Past tense outside dialogue, gentle, and free of body parts or movements
# that only some animals have: the cast includes fish, snails, birds, a scarecrow and a little robot.
# Words about the moral's theme stay neutral ("learned about {theme}"), because a theme can be "greed".
# ---------------------------------------------------------------------------------------------------------
_RULES: dict[str, tuple[str, ...]] = {
    # --- the cast, named differently at every mention (names are rare across fables: new word pairs) ---
    "H": (
        "{hname}", "{hname}", "{hname}", "{hname}", "{hname}", "{htitle}", "the {trait} {char}", "{he}",
        "{he}",
    ),
    "HO": ("{hname}", "{hname}", "{hname}", "{htitle}", "the {trait} {char}", "{him}", "{him}"),
    "F": ("{fname}", "{fname}", "{fname}", "{ftitle}", "the {fadj} {fchar}", "{friend}"),
    # --- time ---
    "once": (
        "once upon a time", "long ago", "long, long ago", "many years ago", "a long time ago", "once",
        "in the old days", "in days gone by", "some time ago", "many seasons ago", "once, long ago",
        "in a time long past", "many moons ago", "years and years ago", "not so very long ago",
        "a great many summers ago", "back when the world was younger", "in a year nobody remembers",
        "before anyone can remember", "in the days of our grandparents", "a hundred springs ago",
    ),
    "T": (
        "one {dayadj} {daypart}", "early one {daypart}", "late one {dayadj} {daypart}",
        "on a {dayadj} [weekday]", "one [weekday] {daypart}", "that {dayadj} [weekday]",
        "just after [meal] one {daypart}", "one {daypart} in [month]", "on the [nth] [weekday] of [month]",
        "one {dayadj} day", "early on a {dayadj} [weekday]", "just before [meal] one {dayadj} {daypart}",
        "one {dayadj} {daypart} in [month]", "on a {dayadj} {daypart} like any other",
    ),
    # After "until": no "on ..." ("until on a Monday" is not English).
    "T_until": (
        "one {dayadj} {daypart}", "early one {daypart}", "late one {dayadj} {daypart}",
        "one [weekday] {daypart}", "that {dayadj} [weekday]", "just after [meal] one {daypart}",
        "one {daypart} in [month]", "the [nth] [weekday] of [month]", "one {dayadj} day",
    ),
    "weekday": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "month": (
        "spring", "early summer", "late summer", "autumn", "early spring", "the rainy season",
        "harvest time", "the dry season", "midsummer", "blossom time",
    ),
    "nth": ("first", "second", "third", "last"),
    "meal": (
        "breakfast", "lunch", "supper", "a long nap", "a little snack", "the morning chores", "tea time",
        "a bath", "a game of hide-and-seek", "the school bell", "a picnic",
    ),
    "lead": (
        "then", "soon", "after that", "next", "before long", "a moment later", "all at once", "just then",
        "meanwhile", "later", "for a while", "by then", "in no time", "after a pause", "for a moment",
        "without a word", "with a sigh", "with a little shiver", "all the while", "quite soon", "by and by",
        "in a flash", "right away", "at that", "just as quickly", "that {daypart}", "around noon",
    ),
    "now": (
        "just then", "suddenly", "all at once", "at that very moment", "before long", "a moment later",
        "right then", "out of nowhere", "without warning", "quite suddenly", "halfway through",
    ),
    # --- feelings, manners, speech ---
    "neg": (
        "worried", "sad", "uneasy", "troubled", "anxious", "upset", "unsure", "nervous", "a little scared",
        "very worried", "quite lost", "confused", "helpless", "gloomy", "glum", "fretful", "downcast",
        "heavy-hearted", "jittery", "muddled", "tearful", "restless", "wobbly inside", "small and lost",
        "all in a flutter", "out of sorts", "quite stuck", "rather afraid", "topsy-turvy inside",
    ),
    "pos": (
        "glad", "happy", "proud", "thankful", "cheerful", "calm", "light and happy", "warm inside",
        "peaceful", "full of joy", "content", "very glad", "quietly proud", "happier than ever", "merry",
        "bright inside", "snug and safe", "bubbly", "grateful", "joyful", "as light as a feather",
        "as warm as toast", "fizzy with joy", "as happy as a lark", "wonderfully calm", "tingly with joy",
    ),
    "adv": (
        "softly", "gently", "kindly", "quietly", "slowly", "warmly", "calmly", "with a smile",
        "thoughtfully", "after a pause", "in a low voice", "with a nod", "firmly", "shyly", "brightly",
        "with a sigh", "carefully", "in a small voice", "cheerfully", "hopefully", "bravely", "at once",
        "with a wink", "in a whisper", "with a little laugh", "under {his} breath", "sleepily", "gravely",
    ),
    "said": (
        "said", "said", "replied", "answered", "whispered", "murmured", "added", "explained", "called",
        "declared", "agreed", "piped up", "sighed", "laughed", "promised", "chirped", "insisted",
    ),
    "manner": (
        "slowly and carefully", "step by step", "with great care", "patiently", "bit by bit", "steadily",
        "as hard as {he} could", "without stopping", "little by little", "with all {his} might",
        "calmly", "one small step at a time", "without a single grumble", "very gently",
        "with a steady heart", "as carefully as {he} could", "a little at a time", "with a hum",
        "with a brave face", "humming all the while", "inch by inch", "quietly and surely",
        "more slowly this time", "without any fuss", "with {his} {prop} [tight]", "whistling a tune",
    ),
    "duration": (
        "all morning", "for a long time", "until the sun was high", "from dawn until dusk",
        "all afternoon", "until the stars came out", "for hours and hours", "until {he} was very tired",
        "through the long afternoon", "until evening came", "for most of the day", "well into the evening",
        "until the shadows stretched", "all through that {dayadj} {daypart}", "until supper time",
        "the whole day long", "until the light began to fade", "past lunch and on into tea time",
        "until the moon peeped out", "for three whole days", "till the crickets began to sing",
    ),
    "tight": ("tight", "close", "very close", "a little tighter", "near", "snug"),
    # --- scenery: short pieces that combine freely ---
    "sky": (
        "the clouds [drifted] [over]", "the wind [wind_verb] [over]", "the sun [sun_verb]",
        "the sky turned [colour]", "a [cool] breeze [wind_verb] [over]", "the light grew [soft]",
        "the first stars [star_verb]", "a [soft] rain [drifted] [over]", "the moon [star_verb] [over]",
        "the air smelled [fresh]", "[a_colour] cloud [drifted] [over]", "the {setting} grew [hushed]",
        "a [small_thing] [flitted] [over]", "[a_sound] [drifted] [over]",
        "[a_colour] [small_thing] [flitted] [over]",
    ),
    "drifted": (
        "drifted", "floated", "wandered", "rolled", "sailed", "tumbled", "slid", "danced", "crept",
        "swept", "passed", "curled",
    ),
    "over": (
        "overhead", "far above", "across the sky", "over {sight1}", "across the {setting}", "past {sight3}",
        "through the {setting}", "above {sight2}", "all around", "in the distance", "over the {setting}",
        "toward {sight3}", "by {sight1}", "over {spot}", "around {sight2}",
    ),
    "wind_verb": (
        "whispered", "hummed", "sighed", "sang", "blew", "murmured", "whistled", "danced", "rustled",
        "tumbled", "wandered", "skipped", "puffed", "played",
    ),
    "sun_verb": (
        "rose higher", "peeked out", "climbed into the sky", "warmed the ground", "slipped behind a cloud",
        "sank low", "shone down", "began to set", "glowed [colour]", "sparkled on {sight1}",
        "painted {sight2} [colour]", "dipped toward the hills", "blazed", "smiled down", "winked",
    ),
    "most_days": ("most days", "most mornings", "on quiet afternoons", "every evening", "at dawn"),
    "said_to": ("said to", "whispered to", "called to", "told", "promised", "said happily to"),
    "colour": (
        "pink", "gold", "orange", "purple", "rosy red", "pale blue", "soft grey", "amber", "silver",
        "lilac", "peach", "honey yellow", "deep blue", "coppery", "apricot", "pearly white", "lavender",
        "plum", "buttery", "cherry pink",
    ),
    "cool": ("cool", "warm", "soft", "gentle", "fresh", "light", "playful", "sleepy", "salty", "sweet"),
    "soft": ("soft", "dim", "golden", "pale", "warm", "gentle", "hazy", "thin", "honeyed", "misty"),
    "fresh": (
        "fresh and clean", "sweet", "of rain", "of flowers", "of warm bread", "of clover", "of the sea",
        "of pine", "of honey", "clean and new", "of wild mint", "of blossom", "of toast", "of apples",
    ),
    "hushed": ("hushed", "quiet", "still", "calm", "peaceful", "silent", "dreamy", "sleepy", "golden"),
    "star_verb": ("came out", "twinkled", "appeared", "began to shine", "glittered", "glowed", "peeped"),
    "small_thing": (
        "butterfly", "bumblebee", "dragonfly", "ladybird", "moth", "leaf", "feather", "sparrow", "petal",
        "firefly", "seed", "beetle", "cloud of gnats", "robin", "swallow", "dandelion puff", "wren",
    ),
    "flitted": (
        "flitted", "fluttered", "drifted", "buzzed", "zigzagged", "twirled", "bobbed", "looped",
        "spun", "darted", "wobbled", "sailed",
    ),
    "a_sound": (
        "birdsong", "the sound of the wind", "a gentle breeze", "soft morning light", "the smell of rain",
        "the hum of bees", "the patter of rain", "a chorus of crickets", "far-off laughter",
        "the tinkle of a bell", "a sleepy song", "the scent of flowers", "the croak of frogs",
    ),
    "where": (
        "", "", "", " by {sight1}", " near {sight2}", " in the middle of the {setting}",
        " under the {dayadj} sky", " for a long moment", " for a while", ", {his} {prop} held [tight]",
        ", clutching {his} {prop}", " beside {sight3}", " at the edge of the {setting}", " at {spot}",
        " not far from {sight1}", " on the way to {spot}", " in the {dayadj} light",
    ),
    # --- opening (only opening slots here: no friend, no day) ---
    "intro": (
        "[once], {at}, [there_lived] {trait_a} {hsmall}{char}{named}.",
        "[once], there was {trait_a} {hsmall}{char}{named} who [lived] {at}.",
        "[once], {trait_a} {char}{named} [lived] {at}, [near] {sight1}.",
        "{trait_a} {char}{named} [lived] {at}, [spot_called] {spot}.",
        "{at}, [where_place], [there_lived] {trait_a} {hsmall}{char}{named}.",
        "{at}, [near] {sight1}, [there_lived] {trait_a} {char}{named}.",
        "{trait_a} {char}{named} once [lived] {at}, [where_place].",
        "[story_of] {trait_a} {hsmall}{char}{named}, who [lived] {at}.",
        "[once], {trait_a} {hsmall}{char}{named} [lived] {at}, [near] {sight1}.",
        "far away, {at}, [spot_called] {spot}, [there_lived] {trait_a} {char}{named}.",
        "[once], {at}, [where_place], [there_lived] {trait_a} {char}{named}.",
        "{trait_a} {hsmall}{char}{named} [lived] {at}, [spot_called] {spot}.",
        "[once], {at}, [near] {sight1}, [there_lived] {trait_a} {char}{named}.",
        "[once], {at}, [spot_called] {spot}, [there_lived] {trait_a} {hsmall}{char}{named}.",
        "[at_spot_cap] {at}, [there_lived] {trait_a} {char}{named}.",
    ),
    "there_lived": (
        "there lived", "lived", "there was", "there once lived", "dwelt", "you could find",
    ),
    "lived": (
        "lived", "made {his} home", "spent {his} days", "lived happily", "had a cosy home",
        "lived quietly", "was growing up", "lived all alone", "lived with {his} family", "had a little home",
    ),
    "near": (
        "near", "close to", "not far from", "beside", "right next to", "just past", "a short way from",
        "within sight of", "a hop and a skip from", "a stone's throw from", "just beyond", "behind",
    ),
    "where_place": (
        "where the [days] were [calm] and the [nights] were [still]", "far from any town",
        "where the wind [wind_verb] all day long", "where the [days] were [calm] and [still]",
        "where the seasons came and went [slowly]", "where life was [calm] and [still]",
        "in a place few had ever seen", "where every day began with [a_sound]",
        "where nothing much ever happened", "where [a_sound] filled the [days]",
        "in a nook called {spot}", "near a spot known as {spot}",
    ),
    "slowly": ("slowly", "lazily", "gently", "quietly", "softly", "dreamily"),
    "days": ("days", "mornings", "afternoons", "summers", "springs", "hours", "weeks"),
    "nights": ("nights", "evenings", "winters", "autumns", "dusks"),
    "calm": ("calm", "long", "warm", "gentle", "sunny", "bright", "slow", "busy", "cheerful", "lazy"),
    "still": ("quiet", "cool", "still", "starry", "peaceful", "silent", "calm", "snug", "sleepy"),
    "home": (
        "{his} [cosy] home [stood] [near] {sight2}, and [each] [daypart_any] {he} [passed] {sight3}.",
        "all around {him} were {sight2} and {sight3}.",
        "[nearby] were {sight2} and {sight3}, and {hname} [loved] [all_of_it].",
        "[^H] knew every corner of the {setting}, from {sight2} to {sight3}.",
        "it was a [place_adj] place, with {sight2} and {sight3}.",
        "from {his} [cosy] home at {spot}, {he} could see {sight2} and {sight3}.",
        "[^H] spent {his} days [pastime] [near] {sight2}.",
        "[each] [daypart_any], [H] [pastime_past] [near] {sight2}.",
        "[^H] liked nothing better than [pastime] [near] {sight2}.",
        "life at {spot} was [simple], with {sight2} on one side and {sight3} on the other.",
        "the {setting} was {his} whole world: {sight2}, {sight3} and [a_sound].",
        "{his} [cosy] home [stood] [near] {sight2}, where {he} [pastime_past] [most_days].",
        "[^H] [loved] {sight2} and {sight3} [most_of_all].",
    ),
    "stood": ("stood", "sat", "was", "lay", "nestled", "hid", "perched"),
    "each": ("each", "every", "almost every", "nearly every", "on a fine"),
    "nearby": ("nearby", "close by", "all around", "not far off", "just outside"),
    "daypart_any": ("morning", "afternoon", "evening", "day", "dawn", "dusk"),
    "cosy": ("cosy", "snug", "little", "tidy", "small", "warm", "humble", "cheerful", "crooked", "neat"),
    "passed": (
        "passed", "looked at", "visited", "went past", "went by", "stopped near", "admired", "greeted",
        "checked on", "waved at", "sat by",
    ),
    "loved": ("loved", "liked", "treasured", "cared for", "enjoyed", "knew", "adored"),
    "place_adj": (
        "lovely", "peaceful", "busy", "cheerful", "quiet", "beautiful", "friendly", "wonderful",
        "sleepy", "lively", "bright", "gentle", "happy", "magical",
    ),
    "simple": ("simple", "good", "peaceful", "easy", "sweet", "happy", "slow and gentle", "busy"),
    "pastime": (
        "playing", "resting", "looking for food", "watching the clouds", "exploring", "daydreaming",
        "humming little songs", "counting the clouds", "chatting with neighbours", "looking for treasures",
        "listening to the wind", "tidying {his} home", "playing with {his} {prop}", "telling stories",
        "practising {his} dance", "making up rhymes", "collecting pebbles", "dozing",
    ),
    "pastime_past": (
        "rested", "played", "sat and thought", "hummed a little song", "watched the sky", "dozed",
        "looked for breakfast", "said good morning to {his} neighbours", "stretched in the sunshine",
        "listened to the wind", "looked for treasures", "played with {his} {prop}", "sang to {himself}",
        "made up rhymes", "practised {his} dance",
    ),
    "trait_line": (
        "[everyone] knew how {trait} {hname} was.",
        "the {char} was [known] [far_wide] for {his} {noun}.",
        "{his} {noun} was [no_secret] [around_here].",
        "[^H] had always been {trait}, ever since {he} was [very_small].",
        "even the [smallest] creatures {at} knew that the {char} was {trait}.",
        "[everyone] often talked about {his} {noun}.",
        "being {trait} was simply part of who {hname} was.",
        "[everyone] called {him} the {trait} {char}, and it was true.",
        "{his} {noun} showed in everything {he} did.",
        "whatever {he} did, {his} {noun} was plain to see.",
        "anyone [around_here] could tell you that {hname} was {trait}.",
        "it was no secret that the {char} was {trait}.",
        "{hname} was {trait}, and [everyone] knew it.",
    ),
    "everyone": (
        "everyone", "all {his} neighbours", "the whole {setting}", "every creature {at}", "all {his} friends",
        "the others", "everybody", "the little ones", "everyone at {spot}",
    ),
    "known": ("known", "loved", "famous", "noticed", "remembered", "talked about"),
    "far_wide": ("far and wide", "all around", "by everyone", "near and far", "by all {his} neighbours"),
    "no_secret": ("well known", "no secret", "famous", "talked about", "plain to see"),
    "around_here": (
        "all over the {setting}", "for miles around", "among {his} neighbours", "{at}", "far and wide",
        "from {sight1} to {sight2}", "at {spot}",
    ),
    "very_small": ("very small", "little", "a baby", "very young", "tiny", "a wee thing"),
    "smallest": ("smallest", "shyest", "youngest", "oldest", "busiest", "sleepiest", "newest"),
    "prop_line": (
        "[^H] [always] [carried] {his} {prop}, [prop_story].", "[^H] had a [favourite] {prop}, [prop_story].",
        "{his} [favourite] thing was {prop_a}, [prop_story].",
        "[^H] [never_without] {his} {prop}, [prop_story].", "[^H] [loved] {his} {prop}, [prop_story].",
        'whenever [surprised], [H] cried, "{catch}!"', '[^H] [said_often] "{catch}!"',
    ),
    "always": ("always", "usually", "often", "proudly"),
    "carried": ("carried", "kept", "took along", "looked after"),
    "favourite": ("favourite", "treasured", "precious", "lucky", "beloved", "special"),
    "prop_story": (
        "a gift from {his} [relative]", "found [near] {sight2}", "which {his} [relative] had made",
        "which {he} had owned for years", "a present from {his} [relative] on a [dayadj] birthday",
        "won at a fair in [month]", "which had once been {his} [relative]'s", "the only one at {spot}",
        "made of [material]", "bought at the market at {spot}", "with [catch_b] painted on it",
    ),
    "relative": (
        "grandmother", "grandfather", "aunt", "uncle", "mother", "father", "big sister", "big brother",
        "old teacher", "oldest friend", "godmother", "granny", "great-aunt",
    ),
    "dayadj": _DAYADJ,
    "habit": (
        "[each] [daypart_any], [H] [habit_act].", "[most_days], [H] [habit_act].",
        "on [dayadj] days, [H] [habit_act].", "[^H] often [habit_act] while [sky].",
        "[whenever_could], [H] [habit_act].", "[^H] liked to [habit_inf] [at_entity].",
    ),
    "habit_act": (
        "said hello to {his} neighbours", "went looking for something to eat", "sat quietly by {sight2}",
        "hummed a little song", "watched the clouds drift by", "took a long stroll", "counted the stars",
        "napped in the warm sun", "looked after {his} little home", "visited {his} friends",
        "listened to the sounds around {him}", "explored near {sight2}", "polished {his} {prop}",
        "told stories to the little ones", "practised {his} whistling",
    ),
    # --- the problem ---
    "friend_intro": (
        "{hname}'s [best] friend was {fadj_a} {fchar}{fnamed}, who [friend_habit].",
        "[^H] [often] spent time with {fadj_a} {fchar}{fnamed} [at_entity].",
        "[nearby] lived {fadj_a} {fchar}{fnamed}, {his} [dear] friend.",
        "[^neighbour_lead] was {fadj_a} {fchar}{fnamed}, who [friend_habit].",
        "{hname} and {fadj_a} {fchar}{fnamed} had been friends [since].",
        "[^H] had a [dear] friend, {fadj_a} {fchar}{fnamed}, who [friend_habit].",
        "{his} [best] friend at {spot} was {fadj_a} {fchar}{fnamed}, who [friend_habit].",
        "[^H] often shared {food} with {fadj_a} {fchar}{fnamed} [at_entity].",
        "{fadj_a} {fchar}{fnamed} lived [at_entity] and [friend_habit].",
    ),
    "often": ("often", "always", "sometimes", "happily", "gladly"),
    "dear": ("dear", "good", "kind", "close", "true", "loyal", "trusty", "faithful"),
    "best": ("best", "closest", "oldest", "dearest", "truest"),
    "since": (
        "for years", "since they were small", "for as long as anyone could remember",
        "ever since they met [at_entity]", "since the day they first met", "for many seasons",
    ),
    "friend_habit": (
        "loved to chat", "liked to sing", "often came to visit", "was always busy", "liked quiet days",
        "told the best jokes", "knew every path {at}", "was always hungry for {food}", "loved a good puzzle",
        "was a little forgetful", "collected shiny things", "never stopped asking questions",
        "giggled at everything", "loved long walks to {sight3}", "hummed all day", "lived [near] {sight3}",
    ),
    "at_entity": (
        "at {spot}", "by {sight1}", "near {sight2}", "beside {sight3}", "past {spot}", "under {sight1}",
        "in the {setting}", "behind {sight2}", "below {spot}", "near {spot}", "close to {sight3}",
        "around {spot}", "by {spot}", "across from {sight1}", "up at {spot}", "down by {sight2}",
    ),
    "problem_line": (
        "[T], {problem}.", "[T], something [unexpected] happened [at_entity]: {problem}.",
        "but [T], {problem}.", "all was [well] until [T_until], when {problem}.",
        "trouble came to {spot} [T]. {Problem}.", "[T], [there_was_trouble]: {problem}.",
        "life was [simple] until [T_until], when {problem}.", "it happened [T]. {Problem}.",
        "then, [T], {problem}.", "but [T], [things_changed]. {Problem}.",
        "[T], while [H] was [pastime] [at_entity], {problem}.", "[^T], as [sky], {problem}.",
    ),
    "unexpected": (
        "unexpected", "sad", "worrying", "strange", "surprising", "troubling", "puzzling", "tricky",
    ),
    "found_out": ("found out", "learned", "realised", "discovered", "heard"),
    "reaction": (
        "[^H] [react] [at_entity].",
        "[^lead], [H] [react] [at_entity].",
        "[^H] [react], and [sky].",
        "[^H] [react] and [react2].",
        "{his} heart [sank], and {he} [react2].",
        '"[oh_dear]!" [cried] [H_post] [at_entity].',
        '"{catch}!" [cried] {hname}. "[oh_dear]!"',
        '"[oh_dear]," [thought] the {trait} {char}, and {he} [react2].',
        '"What shall I do?" [H_post] [wondered] [at_entity].',
    ),
    "H_post": ("{hname}", "{hname}", "{htitle}", "the {trait} {char}", "the {hsmall}{char}"),
    "react": (
        "frowned", "sighed", "stood very still", "went quiet", "blinked", "gulped", "shivered",
        "stopped short", "sat down", "looked around", "held {his} breath", "felt [neg]", "grew [neg]",
        "felt [neg] and [neg]", "could hardly believe it", "did not know what to do", "felt [neg] inside",
        "stared at the ground", "let out a long sigh", "hugged {his} {prop}", "went pale", "froze",
        "felt a lump in {his} throat", "paced up and down",
    ),
    "react2": (
        "looked at {sight1}", "held {his} {prop} [tight]", "sat down [slowly] by {sight2}",
        "thought of {fname}", "let out a [long] sigh", "stared at {sight2}", "hugged {his} {prop}",
        "wished it were not true", "looked up at the {dayadj} sky", "wandered over to {sight3}",
        "counted to ten", "felt [neg]", "forgot all about {his} {food}",
    ),
    "long": ("long", "little", "deep", "shaky", "quiet", "wobbly"),
    "thought": ("thought", "whispered", "muttered", "sighed", "gasped", "said"),
    "cried": ("cried", "gasped", "shouted", "squeaked", "exclaimed", "called out", "yelped"),
    "sank": ("sank", "felt heavy", "beat fast", "skipped a beat", "grew heavy", "gave a little jump"),
    "oh_dear": (
        "Oh dear", "Oh no", "What a mess", "This is bad", "Oh my", "What a worry", "Oh dear me",
        "Goodness", "Oh, whatever next", "This will not do", "Oh, my stars", "Dear, oh dear",
        "Goodness gracious", "Oh, bother",
    ),
    "wondered": ("wondered", "whispered", "said to {himself}", "asked {himself}", "murmured", "sighed"),
    "friend_speech": (
        '"[friend_line]," said [F] [adv].',
        '"[friend_q]?" asked [F] [at_entity].',
        '[^F] looked [neg]. "[friend_q]?" {f_he} asked.',
        '"[friend_line]," [F] [said] [adv].',
        '"[friend_line], {hname}," [F] [said] [at_entity].',
        '[^F] [react] [at_entity]. "[friend_line]," {f_he} [said].',
    ),
    "friend_line": (
        "I do not know what to do", "Something must be done", "I am so worried", "This is a big problem",
        "I wish I knew how to fix this", "We must think of something", "Oh, this is terrible",
        "I feel so [neg]", "Nothing like this has ever happened at {spot}", "Please, do not give up",
        "I am scared", "This is such a muddle", "What a [unexpected] day", "My {fadj} heart is pounding",
    ),
    "friend_q": (
        "What can we do", "Is there any way to fix this", "Will everything be all right",
        "Can you help", "What happens now", "Do you have a plan", "How will we ever manage",
        "Where do we even begin", "What would you do", "Is it very bad", "Shall we ask {wise}",
    ),
    "task_line": (
        "[^H] knew {he} had {task}.", "[^H] [decided] {task}.", "it was up to [HO] {task}.",
        "the job was [HO_s] now: {task}.", "[^H] [had_to_find] {task}.", "[more_than], [H] wanted {task}.",
        "somehow, [H] needed {task}.", "[^H] took a [long] breath and [decided] {task}.",
        "[^H] [wondered_how] {task}.", "[after_a_while], [H] [decided] {task}.",
        "so [H] [decided] {task}, [no_matter].", "[^H] knew the time had come {task}.",
        "[^H] [had_to] {task}.",
    ),
    "decided": (
        "decided", "made up {his} mind", "promised {himself}", "wanted", "hoped", "chose", "resolved",
        "set out", "was determined", "made a plan", "agreed",
    ),
    "after_a_while": (
        "after a while", "before long", "at last", "after thinking hard", "in the end", "after a moment",
        "after a long think", "then", "so", "that {daypart}",
    ),
    # --- turning points ---
    "seek_wise": (
        "[so_lead], [H] [visited] {wise_a}[wise_where].", "[^H] [visited] {wise_a} [for_advice].",
        "[so_lead], [H] told [whole_story] to {wise_a}[wise_where].",
        "[so_lead], [H] [hurried] to {spot}, where {wise_a} [wise_doing].",
    ),
    "hurried": ("hurried", "went", "set off", "made {his} way", "wandered", "ran", "headed"),
    "wise_doing": (
        "was [pastime]", "sat by {sight1}", "was resting in the shade", "was sipping [food_drink]",
        "was watching the clouds", "was dozing in the sun", "was sorting seeds",
    ),
    "food_drink": ("clover tea", "mint tea", "warm milk", "berry juice", "honey water", "nettle soup"),
    "so_lead": (
        "so", "not sure what to do", "needing help", "feeling [neg]", "after a while", "first",
        "without delay", "that very {daypart}", "with {his} {prop} [tight]", "the next morning",
        "still feeling [neg]",
    ),
    "visited": (
        "went to see", "went to visit", "went looking for", "called on", "turned to", "sought out",
        "hurried to find", "paid a visit to",
    ),
    "wise_where": (
        "", ", who lived near {sight2}", " on the other side of the {setting}",
        ", who knew a great deal", ", who had lived {at} for many years", ", who was very wise",
        ", who always knew what to say", ", who was resting by {sight3}", " at the far end of {spot}",
    ),
    "advice": (
        '"[address], [wisdom]," said {wise} [adv].',
        '{wise} [listened] and said, "[address], [wisdom]."',
        '"[address]," said {wise}, "[wisdom]."',
        '{wise} [listened]. "[address], [wisdom]," {w_he} [said].',
        '"[^wisdom]," {wise} [said]. "[^wisdom2]."',
    ),
    "listened": (
        "listened", "nodded slowly", "smiled", "thought for a while", "listened carefully",
        "was quiet for a moment", "smiled kindly", "blinked slowly", "hummed thoughtfully",
    ),
    "address": (
        "Little one", "My dear", "Young {char}", "Listen, little {char}", "Dear {hname}", "My friend",
        "Child", "Ah, little one", "Well now", "Dear heart", "Little {char}", "Now then", "Ah, {hname}",
    ),
    "wisdom": (
        "the answer is often closer than you think", "think with your heart as well as your head",
        "small steps can take you a long way", "what matters most is what you do next",
        "you are stronger than you know", "do what you know is right, even when it is hard",
        "nobody is too small to do something good", "go slowly and look carefully",
        "a problem shared is half solved", "the hardest part is starting", "be patient with yourself",
        "listen first, and then act", "every trouble has a way through it",
        "think about what you have learned about {theme}", "the right way is not always the easy way",
        "ask yourself what a good friend would do", "a calm mind finds the path",
    ),
    "wisdom2": (
        "try again tomorrow", "trust yourself", "you will see", "go on, now", "I believe in you",
        "start with one small thing", "ask {fname} to help you", "think it over", "take your time",
        "and take your {prop} with you", "off you go", "now go back to {spot}",
    ),
    "reflect": (
        "[^H] thought about [these_words] [for_long].", "[^H] [thanked] {wise} and [headed] back to {spot}.",
        "the {char} thought about [these_words] [for_long], and then {he} understood.",
        "{hname} nodded. [plan_now].", "[^these_words_cap] stayed with {him} all the way back to {spot}.",
        "[^H] [thanked] {wise}. [plan_now].",
    ),
    "these_words": ("these words", "what {wise} had said", "the advice", "that", "this"),
    "these_words_cap": ("those words", "the advice", "what {wise} had said"),
    "for_long": (
        "for a long time", "all the way home", "carefully", "that night", "for a while", "as {he} went",
    ),
    "thanked": ("thanked", "said goodbye to", "waved to", "bowed to"),
    "headed": ("headed", "hurried", "went", "set off", "made {his} way"),
    "attempt": (
        "[^at_first], [H] tried [attempt_how], but [fail].", "[^H] tried [attempt_how], but [fail].",
        "[^at_first], [H] tried [attempt_how], and [fail].",
        "[H_post] began by trying [attempt_how], but [fail].",
        "{hname}'s first idea was [attempt_ing], but [fail].",
    ),
    "attempt_ing": (
        "to rush", "to do it all at once", "to go the quick way past {sight1}", "to ask nobody for help",
        "to hurry", "a clever shortcut", "to do it all alone", "to guess",
    ),
    "attempt_how": (
        "to do everything at once", "to hurry", "to do it all by {himself}", "the quickest way",
        "to find an easy way", "to rush", "the first idea that came to {him}", "to do it without thinking",
        "to be clever about it", "a shortcut past {sight2}",
    ),
    "fail": (
        "it did not work", "{he} only grew tired", "things got worse", "{he} soon got stuck by {sight1}",
        "nothing went right", "it was no use", "{he} made a muddle of it", "that did not help at all",
        "everything went wrong", "{he} ended up back at {spot}", "{he} nearly lost {his} {prop}",
    ),
    "retry": (
        "[^H] [stopped], [breathed], and tried again [manner].",
        "so [H] [breathed] and tried again, [manner].",
        "[^H] [kept_going]. {He} started over [at_entity], [manner].",
        "then [H] had [better_idea], and this time {he} went [manner].",
        "after a rest [at_entity], [H] tried again, [manner].",
    ),
    "breathed": (
        "took a deep breath", "counted to three", "thought again", "had a little rest", "had a think",
        "ate a bite of {food}", "looked at {his} {prop}",
    ),
    "stopped": ("stopped", "stood still", "sat down", "waited", "paused", "stayed still", "went quiet"),
    "tempt": (
        "for a moment, [H] thought about [temptation].",
        "part of {him} wanted to [temptation_verb] and go back to {spot}.",
        "[^H] was tempted to [temptation_verb].", "[^H] could [temptation_verb], [tempt_tail].",
        "how easy it would be to [temptation_verb], [H] thought.", "[^H] almost [temptation_past].",
        'a little voice inside {him} said, "[tempt_say]."',
    ),
    "temptation": (
        "going home and forgetting all about it", "looking the other way", "keeping quiet",
        "taking the easy path", "leaving it for someone else", "giving up", "staying in bed",
        "sitting by {sight2} with a plate of {food}",
    ),
    "temptation_verb": (
        "look the other way", "give up", "keep quiet", "take the easy path", "leave it for someone else",
        "walk away", "go back to sleep", "play with {his} {prop} instead",
    ),
    "resist": (
        "but then [H] remembered [memory], and {he} [changed_mind].",
        "but [H] thought of [memory] and [changed_mind].",
        "then [H] remembered [memory]. {He} [changed_mind].",
        "[^H] recalled [memory], and {he} [changed_mind].",
    ),
    "memory": (
        "what {his} [relative] used to say", "how it feels to be alone", "{his} [dear] friend {fname}",
        "the words of {wise}", "all the {dayadj} days at {spot}", "how {he} would feel tomorrow",
        "the day {he} got {his} {prop}",
    ),
    "changed_mind": (
        "changed {his} mind", "knew what to do", "stood up tall", "felt brave again", "[stood_firm]",
        "chose the right way", "turned back", "felt strong again",
    ),
    "talk": (
        '"[friend_q]?" asked [F]. "[answer]," [H_post] [said] [adv].',
        '[^F] came [close_by]. "[friend_q]?" {f_he} [asked]. "[answer]," said {hname}.',
        '"[answer]," [H_post] told [F]. "[friend_yes]," {f_he} [said].',
        '"[friend_line]," said [F]. "[answer]," [H_post] [said].',
    ),
    "answer": (
        "I think I know what to do", "We can do this together", "Let us try once more",
        "I will not give up", "Do not worry, I have an idea", "Leave it to me", "We will find a way",
        "One step at a time", "I have to try", "I am not sure, but I will try", "{catch}, let us go",
    ),
    "friend_yes": (
        "Then I will help you", "I am right here with you", "You can count on me", "Let us begin",
        "I knew you would say that", "I will stay with you", "I will bring some {food}",
    ),
    "weather": (
        "[now], [storm] [storm_over].", "[^worse], [storm] [storm_over].",
        "[now], [storm], and [H] [shivered] [at_entity].", "halfway to {spot}, [storm] [storm_over].",
        "[^storm] [storm_over], just as [H] reached {sight2}.",
    ),
    "storm": (
        "the wind began to [howl]", "dark clouds rolled in", "a cold rain began to fall",
        "the sun slipped behind the clouds", "a thick fog crept in", "the sky grew dark",
        "a chilly wind [howl_past]", "big drops of rain began to fall", "thunder [rumbled]",
        "hailstones [rattled] down", "a gusty wind [howl_past]", "grey mist [rolled]",
    ),
    "howl": ("howl", "blow hard", "whistle", "roar", "tug and push", "moan"),
    "howl_past": ("howled", "swept in", "whooshed past", "roared", "tugged at everything", "moaned"),
    "rumbled": ("rumbled", "grumbled", "boomed", "growled", "crashed"),
    "rattled": ("rattled", "clattered", "pattered", "bounced", "tumbled"),
    "storm_over": (
        "over the {setting}", "across the {setting}", "over {spot}", "above {sight2}", "all around",
        "out of nowhere", "from the hills", "all over {spot}", "around {sight1}",
    ),
    "rolled": ("rolled in", "crept closer", "swirled about", "drifted in", "settled everywhere"),
    "shivered": (
        "shivered", "huddled close", "pulled {his} {prop} near", "blinked the rain away", "ducked low",
    ),
    "endure": (
        "but [H] [stood_firm].", "still, the {trait} {char} kept going [manner].",
        "[^H] felt [neg], but {he} [stood_firm].", "even so, [H] [stood_firm] [manner].",
        "but [H] [stood_firm], {his} {prop} [tight].", '"{catch}," muttered [H], and {he} [stood_firm].',
        "[^F] [stood_firm] beside {him}, and so did {hname}.",
    ),
    "stood_firm": ("held on", "kept going", "stood firm", "did not stop", "stayed", "pressed on", "hung on"),
    # --- a passer-by: a third named character makes a short appearance ---
    "cameo": (
        "on the way to {spot}, [H] met {cameo_a}, who [cameo_act].",
        "[^lead], {cameo_a} came by [at_entity] and [cameo_act2].",
        "[^at_entity_cap], {hname} bumped into {cameo_a}, who [cameo_act].",
    ),
    "at_entity_cap": ("at {spot}", "by {sight1}", "near {sight2}", "beside {sight3}", "halfway to {spot}"),
    "cameo_act": (
        "was carrying a basket of {food}", "was humming a [cheery] tune", "was looking for {sight2}",
        "wished {him} luck", "offered {him} some {food}", "pointed the way past {sight3}",
        "was busy [pastime]", "waved a [cheery] hello", "said that {fname} was a good friend to have",
    ),
    "cameo_act2": (
        "shared a little {food}", "wished {him} good luck", "asked what was the matter",
        "gave {him} a [cheery] wave", "offered to help for a while", "listened to the whole story",
    ),
    "cheery": ("cheery", "friendly", "merry", "warm", "jolly", "happy", "bright"),
    # --- work and resolution ---
    "work_start": (
        "so [H] [began_v] [at_entity].", "and so [H] began, {his} {prop} [tight].",
        "[^without_delay], [H] [began_v] [at_entity].", "the {trait} {char} [began_v] at once.",
        "[^H] [began_v] [manner].", "[^H] began [manner] [at_entity].",
        "[^without_delay], [H] set off for {spot}.", '"{catch}!" cried [H], and {he} [began_v].',
        "[^without_delay], [H] [began_v] [at_entity].",
    ),
    "began_v": (
        "got busy", "began", "made a start", "got going", "set to it", "dived in", "set to work",
        "got to work", "started",
    ),
    "without_delay": (
        "without wasting a moment", "without delay", "right away", "that very {daypart}", "at once",
        "bright and early", "after a quick bite of {food}",
    ),
    "effort": (
        "[^H] worked [manner] [duration].", "it was [hard] work, but [H] [kept_going].",
        "[^H] worked [duration], [manner].", "[^F] [helped_how].",
        "[^H] [kept_going] [at_entity], though it was [hard] work.", "[^H] kept at it [duration].",
        "[^F] [helped_how] [at_entity].", "[^H] and [F] worked [together_how] [duration].",
        "[^H] [worked_v] [at_entity], [manner].", "[^lead], [H] [worked_v] [duration].",
    ),
    "worked_v": (
        "worked", "kept busy", "pushed on", "carried on", "tried and tried", "did {his} best",
        "kept at it", "worked away", "toiled", "did not rest",
    ),
    "hard": ("hard", "slow", "tiring", "tricky", "long", "difficult"),
    "kept_going": (
        "kept going", "did not stop", "kept trying", "carried on", "pressed on", "stuck at it",
        "would not quit",
    ),
    "helped_how": (
        "helped as much as {f_he} could", "watched and cheered", "came along to help",
        "stayed close by", "brought a basket of {food}", "cheered {him} on", "held {his} {prop}",
        "sang a song about {spot}",
    ),
    "time_pass": (
        "[^sky].", "the hours went by at {spot}.", "slowly, the {dayadj} {daypart} passed.",
        "the shadows grew long by {sight1}.", "time passed, and [sky].", "[^lead], [sky].",
        "little by little, things began to change [at_entity].", "[^sky], and the work went on.",
    ),
    "resolution": (
        "[res_lead], {outcome}.", "[res_lead], {outcome}.", "[res_lead], {outcome}.",
        "[^res_lead2], {outcome}.", "[res_lead], {outcome}, and [sky].",
        "[^res_lead2], {outcome}.",
    ),
    "res_lead": (
        "in the end", "at last", "finally", "by evening", "before long", "soon", "not long after",
        "by {daypart}", "by the next [weekday]", "by sundown", "later", "after that", "by tea time",
        "before supper", "at long last", "then", "after a while", "by [weekday]", "that {daypart}",
    ),
    "feeling": (
        "[^H] felt [pos].", "{his} heart felt [light].", "[^H] felt [pos] and [pos].",
        "[^F] smiled, and {hname} smiled too.", "[^H] had never felt so [pos].",
        '"{catch}!" laughed {hname}, feeling [pos].', "{hname} hugged {his} {prop} and felt [pos].",
        "[^H] felt [pos] [at_entity].", "[^F] gave {him} a [cheery] smile, and {hname} felt [pos].",
    ),
    "light": ("light", "warm", "full", "glad", "calm", "peaceful"),
    # --- closing ---
    "closing": (
        "[from_then], [H] [closing_act].",
        "[night_word], the [moon] [star_verb] over {spot}, and [H] [slept].",
        "[^H] never forgot that {dayadj} {daypart} [at_entity].",
        "[whenever] {hname} [passed] {sight3}, {he} [recalled] [that_time].",
        '"[closing_line]," [H_post] [said_to] [F].', "[from_then], {hname} and [F] [together_act].",
        "[life_line] at {spot}, a little [better] than before.",
        "[night_word], {hname} and [F] [shared] {food} [at_entity].",
        "[^F] [recalled] [that_time] [later_on] and [smiled].",
        "[^H] [kept] {his} {prop} [on_shelf] to remember [that_time].",
        "[years_later], [H] [still_told] [listeners] about [that_time].",
    ),
    "from_then": (
        "from that day on", "after that", "ever since", "from then on", "in the days that followed",
        "for many {dayadj} days", "all that [month]", "since then", "these days",
    ),
    "closing_act": (
        "was a little wiser", "remembered what {he} had learned", "never forgot that {daypart}",
        "thought about {theme} whenever {he} passed {sight3}", "told the story to everyone at {spot}",
        "tried to do the right thing", "kept the lesson close", "visited {fname} every [weekday]",
        "hummed as {he} passed {sight2}", "kept {his} {prop} close", "was known at {spot} for {his} {noun}",
        "greeted {fname} with a smile", "shared {his} {food} with anyone who asked",
    ),
    "moon": ("moon", "stars", "moon", "first stars", "silver moon"),
    "slept": (
        "slept peacefully", "fell asleep with a smile", "drifted off to sleep", "slept soundly",
        "dreamed happy dreams", "fell asleep holding {his} {prop}",
    ),
    "closing_line": (
        "I will remember this", "Thank you for today", "What a day it has been",
        "I have learned something today", "We did it", "Tomorrow will be a better day", "{catch}, we did it",
    ),
    "together_act": (
        "often talked about that {daypart}", "looked out for each other", "were kinder to each other",
        "shared many happy days at {spot}", "laughed about it together", "shared {food} every [weekday]",
    ),
    "better": ("better", "kinder", "wiser", "happier", "brighter"),
    "filler": (
        "[^sky].", "{hname} looked around at {sight2}.", "the {setting} was quiet for a while.",
        "somewhere, a bird began to sing.", "{he} thought of {his} home near {sight1}.",
        "[^F] waited nearby.", "a leaf drifted past on the breeze.",
    ),
    "night_word": (
        "that night", "that evening", "later that {daypart}", "at sunset", "after supper",
        "when the day was done", "at bedtime",
    ),
    "whenever": ("whenever", "each time", "every time", "any time", "if ever"),
    "recalled": ("remembered", "thought of", "smiled about", "recalled", "thought back to", "looked back on"),
    "that_time": (
        "that {dayadj} {daypart}", "what had happened", "that day", "{fname}",
        "the lesson of {spot}", "how {fname} helped", "those days",
    ),
    "life_line": (
        "and so life went on", "after that, days went by", "the seasons turned", "soon all was calm again",
        "life carried on", "the days rolled on",
    ),
    "shared": ("shared", "ate", "nibbled", "had a feast of", "munched", "enjoyed"),
    "kept": ("kept", "put", "hung", "placed", "tucked"),
    "on_shelf": (
        "on a shelf", "by the window", "under {his} pillow", "near {his} bed", "by the door",
        "in a safe place",
    ),
    "res_lead2": (
        "when the work was done", "once it was over", "when the sun sank behind {sight1}",
        "by the time {fname} came back", "as the {dayadj} {daypart} ended", "when all was done at {spot}",
        "as the [moon] rose over {spot}", "once the {daypart} was over", "after all that",
        "when {hname} looked up at last",
    ),
    "tempt_tail": (
        "and nobody would know", "and {fname} might never find out", "and [stay] at {spot}",
        "or [stay] by {sight2}", "and have a nap instead",
    ),
    "stay": ("stay", "rest", "sit", "play", "lie down"),
    "tempt_say": (
        "Just leave it", "Why bother", "Someone else can do it", "It is not your job", "Go home and rest",
        "Nobody will mind",
    ),
    "temptation_past": (
        "gave up", "went home", "looked the other way", "turned back to {spot}", "walked away", "kept quiet",
        "sat down by {sight2} to rest",
    ),
    "plan_now": (
        "{He} knew what to do now", "Now {he} had a plan", "At last {he} saw the way", "{He} felt ready",
        "The way ahead was clear", "{He} could see it now", "It all made sense",
    ),
    "at_spot_cap": ("at {spot},", "down at {spot},", "up past {spot},", "out at {spot},", "near {spot},"),
    "spot_called": (
        "in a spot called", "at a place called", "in a corner called", "at a place known as",
        "in a nook named", "near a spot named", "at", "down at", "up by", "not far from",
    ),
    "story_of": (
        "this is the story of", "here is a tale about", "let me tell you about", "listen to the tale of",
        "you may have heard of",
    ),
    "all_of_it": ("every bit of it", "all of it", "the whole place", "each one", "them all"),
    "most_of_all": ("most of all", "more than anything", "best of all", "dearly", "very much"),
    "whenever_could": (
        "whenever {he} could", "when there was time", "on lazy days", "if the sun was out", "after [meal]",
        "before [meal]",
    ),
    "habit_inf": (
        "hum", "nap", "read", "whistle", "paint", "sing", "dance", "sit and think", "count the clouds",
        "chat", "doze",
    ),
    "surprised": (
        "something surprised {him}", "{he} was surprised", "things went wrong", "{he} was amazed",
        "{he} got a fright", "{he} was happy",
    ),
    "said_often": (
        "said most often,", "always said,", "liked to say,", "would cry,", "liked to shout,", "used to say,",
    ),
    "material": (
        "tin", "willow", "birch bark", "old rope", "bright wool", "clay", "oak", "glass beads", "straw",
        "felt",
    ),
    "catch_b": ("stars", "dots", "stripes", "tiny moons", "red hearts", "little fish", "leaves", "zigzags"),
    "neighbour_lead": (
        "among {his} neighbours", "next door", "just down the path", "across from {sight1}", "over by {spot}",
        "up the hill",
    ),
    "had_to_find": (
        "would have to find a way", "had to find a way", "must find a way", "needed a way",
        "looked for a way", "tried to think of a way",
    ),
    "had_to": ("had", "needed", "wanted", "hoped", "was going", "meant", "would try"),
    "no_matter": (
        "no matter what", "come what may", "whatever it took", "rain or shine", "even if it was hard",
        "and quickly",
    ),
    "well": ("well", "calm", "quiet", "peaceful", "fine", "happy"),
    "there_was_trouble": (
        "there was a problem", "trouble came", "there was bad news", "things went wrong", "a worry arose",
    ),
    "things_changed": (
        "things changed", "all that changed", "a worry came", "trouble came along", "everything changed",
    ),
    "together_how": ("side by side", "together", "as a team", "in turns", "happily", "shoulder to shoulder"),
    "better_idea": (
        "a better idea", "a new idea", "a clever thought", "another plan", "a bright idea", "a fresh plan",
    ),
    "at_first": (
        "at first", "the first time", "to begin with", "first", "on the first try", "that {daypart}",
    ),
    "for_advice": (
        "to ask for advice", "for help", "to ask what to do", "for a word of advice", "to talk it over",
        "for some help",
    ),
    "whole_story": ("the whole story", "everything", "all about it", "the tale", "the sad news"),
    "worse": (
        "as if things were not hard enough", "to make things worse", "worse still", "and then",
        "on top of that", "what was more",
    ),
    "close_by": ("close", "over", "near", "closer", "running", "up"),
    "asked": ("asked", "wondered", "said", "whispered", "sighed", "cried"),
    "later_on": ("for years", "often", "with a grin", "fondly", "long after", "every [month]"),
    "smiled": ("smiled", "grinned", "laughed", "beamed", "chuckled", "giggled"),
    "years_later": (
        "years later", "long after", "when {he} was old", "many seasons later", "to this day", "even now",
    ),
    "still_told": (
        "still told", "loved telling", "often told", "would tell", "liked to tell", "never tired of telling",
    ),
    "listeners": (
        "the little ones", "{his} grandchildren", "anyone at {spot}", "visitors",
        "{fname}'s children",
    ),
    "HO_s": ("{hname}'s", "{his}", "the {char}'s", "{his} alone"),
    "more_than": ("more than anything", "with all {his} heart", "above all", "most of all", "right then"),
    "wondered_how": (
        "wondered how best", "thought about how", "tried to work out how", "wondered how",
        "asked {himself} how",
    ),
    "never_without": (
        "never went anywhere without", "always took", "never lost", "never forgot", "took good care of",
    ),
}  # fmt: skip
_RULES["a_colour"] = tuple(f"{_article(c)} {c}" for c in _RULES["colour"])
# fmt: on

# ---------------------------------------------------------------------------------------------------------
# The grammar engine: every rule becomes a tuple of lambdas, one per alternative, each an f-string, so a
# fable costs about a hundred cheap calls instead of an interpreter walk (~100 us a fable on one core).
# ---------------------------------------------------------------------------------------------------------
_REF = re.compile(r"\[(\^?)(\w+)\]|\{(\w+)\}")


def _cap(text: str) -> str:
    """Capital first letter; a sentence that opens with dialogue capitalises the first spoken word."""
    if text[:1] == '"':
        return '"' + text[1:2].upper() + text[2:]
    return text[:1].upper() + text[1:]


def _source(text: str, leaves: set[str], sizes: dict[str, int]) -> str:
    """One alternative as the source of an f-string over the context `c` and the draw function `r`."""
    out, end = [], 0
    for m in _REF.finditer(text):
        out.append(text[end : m.start()].replace("\\", "\\\\").replace("'", "\\'"))
        caret, rule, slot = m.groups()
        if slot:
            out.append(f'{{c["{slot}"]}}')
        else:
            pick = f"{'L' if rule in leaves else 'A'}_{rule}[int(r()*{sizes[rule]})]"
            call = pick if rule in leaves else f"{pick}(c,r)"
            out.append(f"{{_cap({call})}}" if caret else f"{{{call}}}")
        end = m.end()
    out.append(text[end:].replace("\\", "\\\\").replace("'", "\\'"))
    return "f'" + "".join(out) + "'"


def _compile(raw: dict[str, tuple[str, ...]]) -> tuple[dict, set[str]]:
    """Rule name -> tuple of functions (c, r) -> text; and the slots that templates use capitalised."""
    leaves = {name for name, alts in raw.items() if not any(_REF.search(a) for a in alts)}
    sizes = {name: len(alts) for name, alts in raw.items()}
    namespace: dict = {"_cap": _cap, **{f"L_{n}": raw[n] for n in leaves}}
    lines = [
        f"A_{name} = ({''.join(f'lambda c,r: {_source(a, leaves, sizes)},' for a in alts)})"
        for name, alts in raw.items()
    ]
    exec("\n".join(lines), namespace)  # our own constant grammar, not user input
    caps = {
        m[3] for alts in raw.values() for a in alts for m in _REF.finditer(a) if m[3] and m[3][0].isupper()
    }
    return {name: namespace[f"A_{name}"] for name in raw}, {c.lower() for c in caps}


_G, _CAPS = _compile(_RULES)


# A frame that ends in a particle ("came by", "dived in", "very close") meets a place phrase that starts with
# the same word ("by Fern Glade", "in the pumpkin patch", "close to the crabs"): say the word once.
_PARTICLES = "by|in|near|close|at|on|to|under|beside|around|down|up|inside|over|out|off|along|past|behind"
_DOUBLED = re.compile(rf"\b({_PARTICLES}) \1\b")


# Two independent picks can also agree: "felt light and happy and light and happy", "a little little robot".
# Such a sentence is drawn again (fabulist.eval.quality's doubled-phrase check, made cheap).
_LITTLE = re.compile(r"\b(little) little\b", re.IGNORECASE)
_AND_REPEAT = re.compile(r"\b(\w+(?: \w+){1,3}) and \1\b", re.IGNORECASE)


def _doubled_word(sentence: str) -> bool:
    """A word said twice in a row with nothing but a space between ("near near", "inside inside,")."""
    words = sentence.lower().split()
    return any(a == b.rstrip(',.;:!?"') for a, b in itertools.pairwise(words))


def _tidy(sentence: str) -> str | None:
    """The sentence with a doubled particle said once, or None when it still repeats itself."""
    if _doubled_word(sentence):
        sentence = _DOUBLED.sub(r"\1", sentence)
        if _doubled_word(sentence):
            return None
    if " and " in sentence and _AND_REPEAT.search(sentence):
        return None
    return sentence


def _say(name: str, c: dict[str, str], r) -> str:
    """One sentence (or a short run of them) from rule `name`, with a capital first letter; drawn again
    (a few times at most) while it repeats itself."""
    alts = _G[name]
    for _ in range(8):
        sentence = _cap(alts[int(r() * len(alts))](c, r))
        tidy = _tidy(sentence)
        if tidy is not None:
            return tidy
    return sentence


def _with_caps(c: dict[str, str]) -> dict[str, str]:
    """Add {Slot} for the slots that some frame puts right after a full stop."""
    for key in _CAPS:
        if key in c:
            value = c[key]
            c[key[:1].upper() + key[1:]] = value[:1].upper() + value[1:]
    return c


# ---------------------------------------------------------------------------------------------------------
# The story
# ---------------------------------------------------------------------------------------------------------
_HERO_NAMES = {p: _NAMES[p] + _NAMES["any"] for p in el.PRONOUNS}
_TURNS = {  # turning-point kind -> its sentences as (rule, optional)
    "advice": (("seek_wise", False), ("advice", False), ("reflect", True)),
    "attempt": (("attempt", False), ("retry", False)),
    "tempt": (("tempt", False), ("resist", False)),
    "talk": (("talk", False),),
    "weather": (("weather", False), ("endure", True)),
}
_TURN_KINDS = tuple(_TURNS)
_TURN_PAIRS = tuple((a, b) for a in _TURN_KINDS for b in _TURN_KINDS if a != b)


# Pronoun slots per prefix ("" hero, "f_" friend, "w_" elder) and pronoun, e.g. {"f_he": "she", ...}.
_PRONOUNS = {
    x: {p: {x + k: v for k, v in el.PRONOUNS[p].items()} for p in el.PRONOUNS} for x in ("", "f_", "w_")
}
_EXTRAS = ("home", "trait_line", "prop_line", "habit")  # opening sentences after the introduction
_OPENING_ORDERS = tuple((a, b, c) for a in _EXTRAS for b in _EXTRAS for c in _EXTRAS if len({a, b, c}) == 3)


def _pick(seq, r):
    # r() is Random.random: an index from it is cheaper than Random.choice, which the profile showed.
    return seq[int(r() * len(seq))]


def _name(pronoun: str, r) -> str:
    """A first name that suits the pronoun, or a whimsical compound name that suits anyone."""
    if r() < 0.4:
        return _pick(_HERO_NAMES[pronoun], r)
    first, last = _pick(_NAME_A, r), _pick(_NAME_B, r)
    return first + last if first[-1] != last[0] else first + "-" + last


def _opening_context(elements: dict[str, el.Element], r) -> dict[str, str]:
    """Slots for the hero, the trait and the setting, with the choices the opening makes about them."""
    hero, trait, setting = elements["character"], elements["trait"], elements["setting"]
    sights = setting.sights
    first = int(r() * len(sights))  # three sights in a rotated order (a setting may list fewer than three)
    sight = [sights[(first + i) % len(sights)] for i in range(3)]
    name = _name(hero.pronoun, r) if r() < 0.9 else ""
    small = _pick(_HERO_SMALL, r)
    if hero.name.startswith(small.strip() or "-"):  # no "little little robot"
        small = ""
    prop = f"{_pick(_PROP_ADJ, r)} {_pick(_PROP_NOUN, r)}"
    return {
        "hero": "the " + hero.name, "char": hero.name, "hname": name or "the " + hero.name,
        "htitle": f"{name} the {hero.name}" if name else f"the {small}{hero.name}", "hsmall": small,
        "named": f" {_pick(('named', 'called'), r)} {name}" if name else "", "name": name,
        **_PRONOUNS[""][hero.pronoun], "prop": prop, "prop_a": f"{_article(prop)} {prop}",
        "catch": f"{_pick(_CATCH_A, r)} {_pick(_CATCH_B, r)}",
        "spot": f"{_pick(_SPOT_A, r)} {_pick(_SPOT_B, r)}",
        "trait": trait.name, "trait_a": f"{trait.article} {trait.name}", "noun": trait.noun,
        "at": setting.at, "setting": setting.name, "sight1": sight[0], "sight2": sight[1], "sight3": sight[2],
    }  # fmt: skip


def _opening(elements: dict[str, el.Element], r) -> tuple[str, dict[str, str]]:
    """The opening paragraph drawn from `r`, and the slots the rest of the fable needs from it."""
    c = _with_caps(_opening_context(elements, r))
    extras = _pick(_OPENING_ORDERS, r)
    count = (1, 2, 2, 2, 3)[int(r() * 5)]  # 2-4 sentences with the introduction
    return " ".join([_say("intro", c, r), *(_say(n, c, r) for n in extras[:count])]), c


def _cast(hero: el.Character, r) -> list[el.Character]:
    """Friend, elder and passer-by: three characters from the shipped list, all different from the hero."""
    pool = _pool(hero.name)
    picks: list[el.Character] = []
    while len(picks) < 3:
        pick = _pick(pool, r)
        if pick not in picks:
            picks.append(pick)
    return picks


_POOLS: dict[str, tuple[el.Character, ...]] = {}


def _pool(hero_name: str) -> tuple[el.Character, ...]:
    if hero_name not in _POOLS:
        pool = [c for c in el.load("character") if c.name != hero_name]
        pool += [c for c in _SPARE if c.name != hero_name and all(c.name != p.name for p in pool)]
        _POOLS[hero_name] = tuple(pool)
    return _POOLS[hero_name]


def _body_context(elements: dict[str, el.Element], c: dict[str, str], r) -> dict:
    """Add the friend, the elder, a passer-by, the day, the food, the theme, and the filled clauses."""
    friend, wise, passer = _cast(elements["character"], r)
    fadj, cadj = _pick(_FRIEND_ADJ, r), _pick(_FRIEND_ADJ, r)
    fname = _name(friend.pronoun, r) if r() < 0.75 else ""
    if fname[:4] == c["name"][:4]:  # no "Mistyleaf" and "Mistywick" in one fable
        fname = ""
    ref, intro, pronoun = _pick(_WISE, r)
    big = wise.name.title()
    c = dict(c)
    c.update(
        friend="the " + friend.name, fchar=friend.name, fname=fname or "the " + friend.name,
        ftitle=f"{fname} the {friend.name}" if fname else f"the {fadj} {friend.name}",
        fnamed=f" {_pick(('named', 'called'), r)} {fname}" if fname else "",
        fadj=fadj, fadj_a=f"{_article(fadj)} {fadj}", **_PRONOUNS["f_"][friend.pronoun],
        wise=ref.format(w=wise.name, W=big), wise_a=intro.format(w=wise.name, W=big, at=c["at"]),
        **_PRONOUNS["w_"][pronoun or wise.pronoun], theme=elements["moral"].theme,
        dayadj=_pick(_DAYADJ, r), daypart=_pick(_DAYPART, r),
        food=f"{_pick(_FOOD_ADJ, r)} {_pick(_FOOD, r)}",
        cameo_a=f"{_article(cadj)} {cadj} {passer.name} named {_name(passer.pronoun, r)}",
    )  # fmt: skip
    c["problem"] = elements["conflict"].problem.format_map(c)
    c["task"] = elements["conflict"].task.format_map(c)
    c["outcome"] = elements["resolution"].outcome.format_map(c)
    return _with_caps(c)


def _plan(c: dict[str, str], r) -> list[list[tuple[str, bool]]]:
    """Which rules make up each paragraph after the opening, each flagged optional or not."""
    problem = [("problem_line", False), ("reaction", True)]
    problem.insert(0, ("friend_intro", False))  # the friend is introduced before the story calls it "the X"
    if r() < 0.4:
        problem.append(("friend_speech", True))
    turns = _pick(_TURN_PAIRS, r) if r() < 0.45 else (_pick(_TURN_KINDS, r),)
    middle = [list(_TURNS[kind]) for kind in turns]
    if r() < 0.5:  # what the hero must do ends the problem or opens the turning point
        problem.append(("task_line", False))
    else:
        middle[0].insert(0, ("task_line", False))
    work = [("work_start", False)]
    if r() < 0.5:
        work.append(("cameo", True))
    work += [("effort", True), ("effort", True)]
    if r() < 0.5:
        work.append(("time_pass", True))
    work += [("resolution", False), ("feeling", True)]
    closing = [("closing", False), ("closing", True)]
    if r() < 0.3:  # sometimes the closing is part of the last paragraph
        return [problem, *middle, work + closing]
    return [problem, *middle, work, closing]


def _words(sentence: str) -> int:
    return sentence.count(" ") + 1  # sentences never hold double spaces, so this is len(sentence.split())


def _realise(plan: list[list[tuple[str, bool]]], budget: tuple[int, int], c: dict, r) -> list[str]:
    """Write the planned paragraphs: every required sentence, then optional ones in random order while
    they fit the word budget (low, high), then small scene sentences if still under `low`."""
    low, high = budget
    text = [[_say(rule, c, r) if not optional else "" for rule, optional in p] for p in plan]
    total = sum(_words(t) for p in text for t in p if t)
    optional = [(i, j) for i, p in enumerate(plan) for j, (_, opt) in enumerate(p) if opt]
    while optional and total < high:
        i, j = optional.pop(int(r() * len(optional)))
        sentence = _say(plan[i][j][0], c, r)
        if total + _words(sentence) <= high and sentence not in text[i]:
            text[i][j] = sentence
            total += _words(sentence)
    work = text[-2] if len(text) > 2 else text[-1]
    for _ in range(20):  # bounded: a few fillers always suffice for any sane element list
        if total >= low:
            break
        filler = _say("filler", c, r)
        work.insert(max(len(work) - 2, 0), filler)
        total += _words(filler)
    return [" ".join(t for t in p if t) for p in text]


def opening(elements: dict[str, el.Element], seed: int) -> str:
    """The introduction paragraph: the character with its trait, in the setting (2-4 sentences)."""
    return _opening(elements, random.Random(seed).random)[0]


def write_fable(elements: dict[str, el.Element], seed: int, opening_seed: int | None = None) -> str:
    """A complete fable. Its first paragraph is exactly opening(elements, opening_seed) when opening_seed
    is given (else derived from seed); everything after it is drawn from `seed`. Ends with a final line
    'Moral: <moral text>'. Length: 120-300 words as counted by `len(text.split())`."""
    rng = random.Random(seed)
    if opening_seed is None or opening_seed == seed:
        # One stream: the opening takes the first draws of Random(seed), exactly as opening() does, and
        # the body continues the same stream (one seeding less; seeding is a tenth of the cost).
        first, c = _opening(elements, rng.random)
    else:
        first, c = _opening(elements, random.Random(opening_seed).random)
    r = rng.random
    c = _body_context(elements, c, r)
    moral = "Moral: " + elements["moral"].text
    fixed = _words(first) + _words(moral)
    # A per-fable length goal, so that lengths spread over the target range instead of piling at its top.
    goal = TARGET_WORDS[0] + 20 + int(r() * (TARGET_WORDS[1] - TARGET_WORDS[0] - 20))
    paragraphs = _realise(_plan(c, r), (TARGET_WORDS[0] - fixed, goal - fixed), c, r)
    # An adjective the character's own name already holds: "a little little robot", "Little little robot".
    return _LITTLE.sub(r"\1", "\n\n".join([first, *paragraphs, moral]))


# ---------------------------------------------------------------------------------------------------------
# The teacher that `fabulist data generate --teacher procedural` runs (the Teacher protocol of base.py)
# ---------------------------------------------------------------------------------------------------------
class ProceduralTeacher:
    """Writes one fable per prompt record with write_fable; offline, one core, deterministic."""

    name = "procedural"
    flush_every = 512  # fsync in groups: a fable takes ~0.1 ms, one fsync per record would dominate

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fable_seed(self, prompt: dict) -> int:
        """The write_fable seed of a prompt: its hash mixed with the run's seed, so that a rerun or a
        resume writes the same fable and another --seed writes another."""
        return int(prompt["prompt_hash"], 16) ^ (self.seed * 0x9E3779B97F4A7C15)

    def outcomes(self, prompts: Iterable[dict], budget: Budget) -> Iterator[Outcome]:
        for prompt in prompts:
            start = time.perf_counter()
            try:
                story = {kind: el.lookup(kind, prompt["elements"][kind]) for kind in el.KINDS}
                text = write_fable(story, self.fable_seed(prompt), opening_seed=prompt.get("opening_seed"))
            except (el.ElementError, KeyError, ValueError) as exc:
                yield Outcome(prompt, error=f"{type(exc).__name__}: {exc}")
                continue
            record = fable_record(
                prompt, text, teacher=self.name, llm_name=self.name, input_tokens=0,
                output_tokens=0, seconds=time.perf_counter() - start, sampling={},
                seed=self.seed,
            )  # fmt: skip
            yield Outcome(prompt, record=record)
