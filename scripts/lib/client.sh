# The @sumu/client package (clients/js): Node.js and its pinned npm packages (npm ci from the
# committed lock file), then its tests. Sourced after scripts/lib/common.sh; uses the moto of
# scripts/test (SUMU_MOTO_ENDPOINT) for the end-to-end tests against sumu-local.

CLIENT_JS="$ROOT/clients/js"

# Node.js >= 20 (apt-get when missing) and clients/js's packages, reinstalled only when
# package-lock.json changes.
ensure_client_deps() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing nodejs and npm (for @sumu/client)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  local major; major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    echo "@sumu/client needs Node.js >= 20; this machine has $(node --version)" >&2
    return 1
  fi
  local stamp="$CLIENT_JS/node_modules/.package-lock.sha256" want
  want=$(sha256sum "$CLIENT_JS/package-lock.json" | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  log "npm ci (clients/js)"
  (cd "$CLIENT_JS" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
}

# Builds the package and runs its tests: logic (fake gateway), the demo bundle is up to date,
# npm pack → install → import → tsc, and end to end against sumu-local + moto.
run_client_tests() {
  ensure_client_deps
  log "cargo build sumu-local (for @sumu/client's end-to-end tests)"
  (cd "$ROOT" && cargo build --workspace --bins --locked)
  log "@sumu/client tests"
  (cd "$CLIENT_JS" && npm test --silent)
}
