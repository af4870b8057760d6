# The Terraform stage of scripts/test: formatting, generated READMEs, validation, unit
# tests with a mocked provider, the static security scan, and the local stack applied to moto with
# the Lambdas built from this repository (apply → clean re-plan → drift test → destroy → nothing
# left). Sourced after common.sh; needs SUMU_MOTO_ENDPOINT (start_moto) for the integration part.

# Every directory `terraform validate` must accept: the modules, their examples, the root configs.
terraform_dirs() {
  local dir
  for dir in modules/sumu modules/custom-domain modules/*/examples/* terraform/aws terraform/local; do
    [ -f "$ROOT/$dir/versions.tf" ] || [ -f "$ROOT/$dir/main.tf" ] && echo "$dir"
  done
}

# Installs the providers of one configuration from the mirror (ensure_terraform_cli_config) or the
# registry; quiet unless it fails.
terraform_init() {
  local dir=$1 out
  shift
  if ! out=$(terraform -chdir="$ROOT/$dir" init -input=false -no-color "$@" 2>&1); then
    echo "$out" >&2
    return 1
  fi
}

terraform_static_checks() {
  log "terraform fmt -check -recursive"
  terraform fmt -check -recursive -diff "$ROOT/modules" "$ROOT/terraform"

  log "Terraform READMEs up to date (scripts/tf-docs --check)"
  "$VENV/bin/python" "$ROOT/scripts/lib/tf_docs.py" --check

  local dir
  for dir in $(terraform_dirs); do
    log "terraform validate $dir"
    terraform_init "$dir" -backend=false
    terraform -chdir="$ROOT/$dir" validate -no-color
  done

  for dir in modules/sumu modules/custom-domain terraform/aws; do
    log "terraform test $dir (mock provider)"
    terraform -chdir="$ROOT/$dir" test -no-color
  done

  log "checkov (static security scan of modules/ and terraform/)"
  # Offline: no module downloads, no platform calls. Every skip is written next to its resource.
  # A check that crashes on an expression is silently not evaluated: treat that as a failure too.
  local scan scan_status=0
  scan=$(BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false "$VENV/bin/checkov" \
    --directory "$ROOT/modules" --directory "$ROOT/terraform" \
    --framework terraform --skip-download --compact --quiet 2>&1) || scan_status=$?
  echo "$scan"
  [ $scan_status -eq 0 ] || return $scan_status
  if grep -q 'Failed to run check' <<<"$scan"; then
    echo "checkov could not evaluate some checks (see above)" >&2
    return 1
  fi
}

# The local stack applied to moto with the Lambda zips built from this repository.
terraform_integration() {
  : "${SUMU_MOTO_ENDPOINT:?start_moto first}"
  local zips="${SUMU_LAMBDA_ZIP_DIR:-}"
  if [ -z "$zips" ]; then
    log "scripts/build-lambdas (release, arm64; incremental after the first build)"
    "$ROOT/scripts/build-lambdas"
    zips="$ROOT/target/lambda"
  fi
  local fn size
  for fn in authorizer presence pusher; do
    [ -f "$zips/$fn/bootstrap.zip" ] || { echo "missing $zips/$fn/bootstrap.zip" >&2; return 1; }
    # The module uploads the zip directly, which AWS caps at 50 MB.
    size=$(stat -c %s "$zips/$fn/bootstrap.zip")
    [ "$size" -le 52428800 ] || { echo "$fn/bootstrap.zip is $size bytes (> 50 MB direct upload limit)" >&2; return 1; }
  done

  local work name status=0
  work=$(mktemp -d)
  name="sumu-tf-$(date +%s)-$$"
  # A private data dir and state file, so a developer's own terraform/local state is never touched.
  export TF_DATA_DIR="$work/data"
  local vars=(-var "endpoint=$SUMU_MOTO_ENDPOINT" -var "name=$name" -var "lambda_zip_dir=$zips")
  local tf=(terraform -chdir="$ROOT/terraform/local")

  terraform_init terraform/local "-backend-config=path=$work/terraform.tfstate"

  log "terraform apply terraform/local → moto ($name)"
  "${tf[@]}" apply -auto-approve -input=false -no-color "${vars[@]}" >"$work/apply.log" 2>&1 \
    || { tail -n 60 "$work/apply.log" >&2; status=1; }

  if [ $status -eq 0 ]; then
    log "terraform plan after apply shows no changes"
    local plan_status=0
    "${tf[@]}" plan -detailed-exitcode -input=false -no-color "${vars[@]}" >"$work/plan.log" 2>&1 || plan_status=$?
    if [ $plan_status -ne 0 ]; then
      cat "$work/plan.log" >&2
      echo "re-plan after apply is not clean (terraform plan -detailed-exitcode: $plan_status; 2 = changes)" >&2
      status=1
    fi
  fi

  if [ $status -eq 0 ]; then
    log "drift test: the deployed API is routes.json and the templates sumu-local executes"
    "${tf[@]}" show -json >"$work/state.json"
    SUMU_TF_API_ID=$("${tf[@]}" output -raw api_id) SUMU_TF_STAGE=$("${tf[@]}" output -raw stage) \
      SUMU_TF_STATE_JSON="$work/state.json" "$VENV/bin/python" "$ROOT/tests/terraform/drift_test.py" || status=1
    SUMU_TF_NAME=$name SUMU_TF_EXPECT=present "$VENV/bin/python" "$ROOT/tests/terraform/leftovers_test.py" || status=1
    log "the applied IAM policies kept for the IAM check (scripts/lib/iam.sh)"
    save_applied_policies "$name" "$work/state.json" "${tf[*]}" "${vars[@]}" || status=1
  fi

  # Always destroy what was applied, even after a failure above.
  log "terraform destroy"
  if "${tf[@]}" destroy -auto-approve -input=false -no-color "${vars[@]}" >"$work/destroy.log" 2>&1; then
    [ -z "$("${tf[@]}" state list)" ] || { echo "state not empty after destroy" >&2; status=1; }
    SUMU_TF_NAME=$name SUMU_TF_EXPECT=absent "$VENV/bin/python" "$ROOT/tests/terraform/leftovers_test.py" || status=1
  else
    tail -n 60 "$work/destroy.log" >&2
    status=1
  fi

  unset TF_DATA_DIR
  rm -rf "$work"
  return $status
}

terraform_checks() {
  command -v terraform >/dev/null || { echo "terraform not found on PATH" >&2; return 1; }
  ensure_terraform_cli_config
  terraform_static_checks
  terraform_integration
}
