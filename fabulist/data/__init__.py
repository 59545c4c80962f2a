"""Stage 1, data: element lists, combinatorial prompts, teachers that write fables, dataset tools."""
