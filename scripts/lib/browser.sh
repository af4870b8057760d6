# The browser test's needs: Debian's Chromium (driven by playwright-core, which downloads no
# browser of its own) and the test's npm packages. Sourced after scripts/lib/common.sh.

BROWSER_TESTS="$ROOT/tests/browser"
CHROMIUM="${SUMU_CHROMIUM:-/usr/bin/chromium}"

# Debian's chromium package, installed with apt-get when missing (as root, or through sudo).
ensure_chromium() {
  [ -x "$CHROMIUM" ] && return 0
  log "installing Debian's chromium (for the browser test)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium
  [ -x "$CHROMIUM" ] || { echo "chromium was installed but $CHROMIUM does not exist" >&2; return 1; }
}

# Node.js (>= 20, which playwright-core needs) and the pinned packages of tests/browser (npm ci
# from the committed lock file); reinstalled only when package-lock.json changes.
ensure_browser_test_deps() {
  ensure_npm_packages "$BROWSER_TESTS" "the browser test (playwright-core)"
}

# Builds the binaries (sumu-local) and runs the browser suites: the page against a fake gateway,
# then the whole demo against sumu-local + moto (SUMU_MOTO_ENDPOINT if set, else its own moto).
run_browser_tests() {
  ensure_chromium
  ensure_browser_test_deps
  log "cargo build --bins (sumu-local for the browser test)"
  (cd "$ROOT" && cargo build --workspace --bins --locked)
  log "browser tests (headless Chromium)"
  (cd "$BROWSER_TESTS" && SUMU_CHROMIUM="$CHROMIUM" npm test --silent)
}
