# The IAM check of scripts/test (docs/least-privilege.md): a recording proxy in front of moto
# collects every AWS call sumu's components make while the suites run; the Terraform stage saves
# the policies it applied; at the end every call is checked against them. Sourced after
# common.sh.

# Starts tests/iam/recorder.py in front of moto ($SUMU_MOTO_ENDPOINT) and points
# SUMU_MOTO_ENDPOINT at it; SUMU_AWS_CALL_LOG names the call log (sumu-local appends its
# management-API calls there too) and SUMU_IAM_WORK where the Terraform stage leaves the policies.
start_aws_call_recorder() {
  : "${SUMU_MOTO_ENDPOINT:?start_moto first}"
  SUMU_IAM_WORK=$(mktemp -d)
  export SUMU_IAM_WORK
  export SUMU_AWS_CALL_LOG="$SUMU_IAM_WORK/calls.jsonl"
  : >"$SUMU_AWS_CALL_LOG"
  "$VENV/bin/python" "$ROOT/tests/iam/recorder.py" --upstream "$SUMU_MOTO_ENDPOINT" \
    --log "$SUMU_AWS_CALL_LOG" --port-file "$SUMU_IAM_WORK/port" &
  RECORDER_PID=$!
  local deadline=$((SECONDS + 30))
  until [ -s "$SUMU_IAM_WORK/port" ]; do
    [ $SECONDS -lt $deadline ] || { echo "the AWS call recorder did not start" >&2; return 1; }
    kill -0 "$RECORDER_PID" 2>/dev/null || { echo "the AWS call recorder exited" >&2; return 1; }
    sleep 0.1
  done
  export SUMU_MOTO_ENDPOINT="http://127.0.0.1:$(cat "$SUMU_IAM_WORK/port")"
  log "AWS call recorder on $SUMU_MOTO_ENDPOINT (calls in $SUMU_AWS_CALL_LOG)"
}

stop_aws_call_recorder() {
  if [ -n "${RECORDER_PID:-}" ]; then kill "$RECORDER_PID" 2>/dev/null || true; wait "$RECORDER_PID" 2>/dev/null || true; fi
  if [ -n "${SUMU_IAM_WORK:-}" ]; then rm -rf "$SUMU_IAM_WORK"; fi
}

# Called by the Terraform stage with the applied stack: keeps its state, and the plan of the
# same stack with presence events sent to the queue (a configuration the suites also run).
# $3 is the terraform command (with -chdir), the rest its -var arguments.
save_applied_policies() {
  local name=$1 state_json=$2 terraform_command=$3
  shift 3
  [ -n "${SUMU_IAM_WORK:-}" ] || return 0
  cp "$state_json" "$SUMU_IAM_WORK/state.json"
  echo "$name" >"$SUMU_IAM_WORK/name"
  $terraform_command plan -input=false -no-color "$@" -var presence_destination=queue \
    -out="$SUMU_IAM_WORK/queue.plan" >/dev/null
  $terraform_command show -json "$SUMU_IAM_WORK/queue.plan" >"$SUMU_IAM_WORK/presence-queue.json"
}

run_iam_checks() {
  log "IAM check: its own tests (tests/iam)"
  "$VENV/bin/python" -m unittest discover -s "$ROOT/tests/iam" -p 'test_*.py'
  log "IAM check: every recorded AWS call of sumu's components against the roles Terraform applied"
  [ -s "$SUMU_IAM_WORK/state.json" ] || { echo "no applied state: the Terraform stage did not run" >&2; return 1; }
  "$VENV/bin/python" "$ROOT/tests/iam/check.py" --calls "$SUMU_AWS_CALL_LOG" \
    --state "$SUMU_IAM_WORK/state.json" --variant "$SUMU_IAM_WORK/presence-queue.json" \
    --name "$(cat "$SUMU_IAM_WORK/name")" --prove --lint
}
