#!/usr/bin/env bash
# Make Debian's Chromium available for the console's browser tests (Playwright drives it through
# its executablePath; browser downloads are not used). As root it installs the package when
# missing; prints the executable's path, or nothing when none can be had.
set -euo pipefail

# A CJK font too, so the Chinese pages render (and their screenshots show words, not boxes).
have_font() { fc-list 2>/dev/null | grep -qiE "wqy|noto sans cjk|noto serif cjk"; }
for candidate in /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -x "$candidate" ] && have_font; then echo "$candidate"; exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Chromium and a CJK font from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium fonts-wqy-zenhei >&2
  echo /usr/bin/chromium
elif [ -x /usr/bin/chromium ]; then
  echo /usr/bin/chromium
fi
