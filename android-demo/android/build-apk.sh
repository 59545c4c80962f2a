#!/usr/bin/env bash
# Build the Android APK: a WebView that serves the web app from the APK's own assets, with no permissions.
#
#   android-demo/android/build-apk.sh                     # the shipped model -> android/build/fabulist-demo.apk
#   android-demo/android/build-apk.sh --model DIR --quant int4 --out fabulist.apk
#   android-demo/android/build-apk.sh --web DIR           # package an app scripts/build.mjs already built
#   (--keystore PATH: the debug key to sign with, made on first use; default android/build/debug.keystore)
#
# Debian's tools only (no Gradle, no SDK download): smali assembles the two classes, written in smali since
# there is no javac-to-dex compiler here; aapt packs the manifest, icon and assets against the framework
# resources of android-framework-res; zipalign; apksigner signs with a debug key that keytool makes once.
# The result is checked with `apksigner verify`.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEMO=$(dirname "$HERE")
BUILD=$HERE/build
FRAMEWORK=/usr/share/android-framework-res/framework-res.apk
MODEL="" QUANT="" WEB="" OUT=$BUILD/fabulist-demo.apk KEYSTORE=$BUILD/debug.keystore

die() { echo "build-apk: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
  [[ $1 == -h || $1 == --help ]] && { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }
  [[ $# -ge 2 ]] || die "$1 needs a value"
  case $1 in
    --model) MODEL=$2 ;;
    --quant) QUANT=$2 ;;
    --web) WEB=$2 ;;
    --out) OUT=$2 ;;
    --keystore) KEYSTORE=$2 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift 2
done

missing=()
for tool in smali aapt zipalign apksigner keytool; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[[ -f $FRAMEWORK ]] || missing+=("$FRAMEWORK")
if [[ ${#missing[@]} -gt 0 ]]; then
  die "missing ${missing[*]}: apt-get install libsmali-java aapt zipalign apksigner android-framework-res default-jre-headless"
fi
if [[ -n $WEB && ( -n $MODEL || -n $QUANT ) ]]; then
  die "--web packages a built app as it is; --model and --quant go to the web build instead"
fi
if [[ -n $WEB && ! ( -f $WEB/index.html && -f $WEB/model/app_model.json ) ]]; then
  die "$WEB is not a built app (run scripts/build.mjs)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fabulist-apk-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/res/mipmap-xxxhdpi" "$WORK/assets"
cp "$DEMO/app/icons/icon-192.png" "$WORK/res/mipmap-xxxhdpi/ic_launcher.png"
if [[ -n $WEB ]]; then
  cp -r "$WEB" "$WORK/assets/www"
else
  node "$DEMO/scripts/build.mjs" --out "$WORK/assets/www" ${MODEL:+--model "$MODEL"} ${QUANT:+--quant "$QUANT"} \
    || exit 1
fi

smali assemble --api 24 -o "$WORK/classes.dex" "$HERE/smali"
aapt package -f -M "$HERE/AndroidManifest.xml" -S "$WORK/res" -A "$WORK/assets" -I "$FRAMEWORK" \
  -F "$WORK/unsigned.apk"
(cd "$WORK" && aapt add unsigned.apk classes.dex >/dev/null)
zipalign -f -p 4 "$WORK/unsigned.apk" "$WORK/aligned.apk"

if [[ ! -f $KEYSTORE ]]; then
  mkdir -p "$(dirname "$KEYSTORE")"
  keytool -genkeypair -keystore "$KEYSTORE" -storepass android -keypass android -alias androiddebugkey \
    -keyalg RSA -keysize 2048 -validity 10000 -dname "CN=Android Debug,O=Android,C=US" -noprompt 2>/dev/null
fi
mkdir -p "$(dirname "$OUT")"
apksigner sign --ks "$KEYSTORE" --ks-pass pass:android --key-pass pass:android --ks-key-alias androiddebugkey \
  --out "$OUT" "$WORK/aligned.apk"
rm -f "$OUT.idsig"
apksigner verify "$OUT"
echo "built $OUT ($(du -h "$OUT" | cut -f1)): install it with adb install -r $OUT"
