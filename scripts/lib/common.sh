# Shared by scripts/*: where things are, and the installs every command needs.
# Each ensure_* is idempotent and cheap when its work is already done, so scripts/dev and
# scripts/test work on a fresh machine and stay fast on a used one.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV="$ROOT/.venv"
TOOLS="$ROOT/.tools"
export PATH="$VENV/bin:$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The Rust toolchain's lint and format components, and the Lambda target.
ensure_rust_components() {
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
}

# The project's Python virtualenv with moto, airspeed-ext, cargo-lambda, checkov and parliament, pinned in
# scripts/requirements.txt; reinstalled when that file changes.
ensure_venv() {
  local requirements="$ROOT/scripts/requirements.txt" stamp="$VENV/.requirements.sha256"
  local want; want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  log "installing Python tools into .venv (moto, airspeed-ext, cargo-lambda, checkov, parliament)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -r "$requirements"
  echo "$want" >"$stamp"
}

# Terraform cannot reach its registry here, but a copy of the AWS provider is preinstalled in a
# filesystem mirror. When such a mirror exists, point `provider_installation` at it through a CLI
# config file; when it does not (a machine with registry access), leave Terraform's default alone.
# An existing CLI config file is never overwritten.
ensure_terraform_cli_config() {
  local mirror="${SUMU_TERRAFORM_MIRROR:-}"
  if [ -z "$mirror" ]; then
    for candidate in /opt/tf-plugins /usr/share/terraform/plugins "$HOME/.terraform.d/plugins"; do
      if [ -d "$candidate/registry.terraform.io/hashicorp/aws" ]; then mirror=$candidate; break; fi
    done
  fi
  [ -n "$mirror" ] || return 0
  if [ -z "${TF_CLI_CONFIG_FILE:-}" ]; then export TF_CLI_CONFIG_FILE="$TOOLS/terraformrc"; fi
  [ -f "$TF_CLI_CONFIG_FILE" ] && return 0
  mkdir -p "$(dirname "$TF_CLI_CONFIG_FILE")"
  cat >"$TF_CLI_CONFIG_FILE" <<CONFIG
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/*"]
  }
}
CONFIG
  log "wrote $TF_CLI_CONFIG_FILE (providers from $mirror)"
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until 127.0.0.1:$1 accepts connections (up to $2 seconds, default 60).
wait_for_port() {
  local port=$1 deadline=$((SECONDS + ${2:-60}))
  until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "nothing listens on 127.0.0.1:$port" >&2; return 1; }
    sleep 0.2
  done
}

# Starts a moto server on 127.0.0.1 and exports SUMU_MOTO_ENDPOINT. The caller stops it with
# stop_moto (scripts install it in their EXIT trap).
start_moto() {
  local port; port=${SUMU_MOTO_PORT:-$(free_port)}
  MOTO_IAM_LOAD_MANAGED_POLICIES=true "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" \
    >"${MOTO_LOG:-/dev/null}" 2>&1 &
  MOTO_PID=$!
  wait_for_port "$port" 60
  export SUMU_MOTO_ENDPOINT="http://127.0.0.1:$port"
  log "moto on $SUMU_MOTO_ENDPOINT"
}

stop_moto() {
  if [ -n "${MOTO_PID:-}" ]; then kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; fi
}

# Node.js >= 20 (apt-get when missing) and the pinned npm packages of directory $1 (npm ci from
# its committed lock file), reinstalled only when its package-lock.json changes. $2 names who
# needs them, for the messages.
ensure_npm_packages() {
  local dir=$1 who=$2
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing nodejs and npm (for $who)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  local major; major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    echo "$who needs Node.js >= 20; this machine has $(node --version)" >&2
    return 1
  fi
  local stamp="$dir/node_modules/.package-lock.sha256" want
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  log "npm ci (${dir#"$ROOT"/})"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
}
