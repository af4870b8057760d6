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
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing nodejs and npm (for the browser test)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  local major; major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    echo "the browser test needs Node.js >= 20 (playwright-core); this machine has $(node --version)" >&2
    return 1
  fi
  local stamp="$BROWSER_TESTS/node_modules/.package-lock.sha256" want
  want=$(sha256sum "$BROWSER_TESTS/package-lock.json" | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  log "npm ci (tests/browser)"
  (cd "$BROWSER_TESTS" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
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
