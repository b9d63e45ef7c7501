#!/usr/bin/env bash
# Test set-up that the virtual environment cannot provide. Runs before pytest (python3 dev.py test).
#
# The dashboard's browser test (tests/e2e/test_dashboard_browser.py) drives Debian's chromium with
# the Python `playwright` package (never `playwright install`: no browser download). This installs
# what is missing: chromium and a CJK font (apt-get, `apt-get update` first, only when chromium is
# missing), and playwright into the venv. It never fails the run: where apt or the index cannot be
# reached the browser test skips saying why, except with CI=true, where it fails.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python

say() { echo "tests/setup.sh: $*"; }

if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo -n"; fi
    say "installing Debian's chromium (and a CJK font) for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    if $SUDO apt-get update -qq >/dev/null 2>&1 \
       && $SUDO apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null 2>&1; then
      say "chromium installed: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
    else
      say "could not install chromium with apt-get; the browser tests will skip (fail on CI)"
    fi
  else
    say "no apt-get here: chromium is not installed; the browser tests will skip (fail on CI)"
  fi
fi

if [ ! -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] && command -v apt-get >/dev/null 2>&1; then
  # the CJK font embedded in PDF case files (engine/casefile_pdf.py)
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo -n"; fi
  say "installing Debian's fonts-wqy-microhei for the PDF case file"
  export DEBIAN_FRONTEND=noninteractive
  { $SUDO apt-get install -y -qq fonts-wqy-microhei >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq fonts-wqy-microhei >/dev/null 2>&1; }; } \
    || say "could not install fonts-wqy-microhei; the PDF case file tests will fail"
fi

if [ -x "$PY" ] && ! "$PY" -c "import playwright.sync_api" >/dev/null 2>&1; then
  say "installing the playwright package into .venv (no browser download)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$PY" -m pip install --quiet playwright \
    || say "could not install playwright; the browser tests will skip (fail on CI)"
fi
exit 0
