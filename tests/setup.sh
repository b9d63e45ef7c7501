#!/usr/bin/env bash
# Test set-up that the virtual environment cannot provide. Runs before pytest.
# (Browser tests install Debian's chromium here; see tests/test_dashboard_browser.py.)
set -u
exit 0
