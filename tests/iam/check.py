"""Least privilege, tested: every AWS call sumu's components made in the test suites must be allowed
by the IAM policy modules/sumu gives that component, as Terraform applied it.

Inputs (scripts/lib/iam.sh passes them):
  --calls     the call log: JSON lines written by recorder.py (DynamoDB, SNS, SQS calls through
              moto) and by sumu-local (management-API calls), each {caller, call, needs}
  --state     `terraform show -json` of terraform/local applied to moto: the roles' inline
              policies and the ARNs of the deployed table, indexes, stream, queues, topics, API
  --variant   `terraform show -json` of a saved plan of the same stack with other variables
              (optional, repeatable): calls made under such a configuration (presence events to
              the queue) are checked against the union of the policies of these configurations
  --name      the deployment's `name` (the prefix of its resource names)

Each recorded resource ARN (the local stack's, in moto) is rewritten to the deployed resource of the
same role (`…-connections` to the deployed connections table, its index and stream likewise; so
`…-subscriptions`, `…-history` and `…-members`, and the subscriptions table's stream; the
local API and stage to the deployed `execution_arn` and stage), then each distinct (role, action,
resource) is evaluated by moto's IAM policy engine (moto.iam.access_control.IAMPolicy: Allow/Deny,
wildcards in actions and resources). Fails on any call not allowed, on a resource the module does not
create, and on a component the recording never saw (a wiring fault would otherwise pass silently).

--prove then shows, on the same calls and policies, that the check can fail: removing any one
statement that allowed a recorded call must deny something (a statement whose every need another
statement also allows is reported as redundant), and pointing the statements at a table of another
name must deny the calls on the connections table.

--lint runs parliament (the IAM linter) on every policy; a finding fails the run unless
tests/iam/lint-justified.json explains it.
"""

import argparse
import collections
import copy
import json
import pathlib
import sys

from moto.iam.access_control import IAMPolicy, PermissionResult

HERE = pathlib.Path(__file__).resolve().parent

# The roles checked, by the access key id their calls are signed with (sumu-local's roles.rs), and
# the suffix of the module's role name; what each must have been seen calling (service prefixes).
CHECKED_ROLES = {
    "sumu-role-api-gateway": ("-apigw-integrations", {"dynamodb", "sqs", "sns"}),
    "sumu-role-presence": ("-presence", {"dynamodb"}),
    "sumu-role-pusher": ("-pusher", {"dynamodb", "sqs", "execute-api"}),
}


class Failure(Exception):
    pass


def root_module(document):
    return (document.get("values") or document.get("planned_values") or {}).get("root_module", {})


def resources_of(document, kind):
    """Every resource of type `kind` in a state or plan document, in any module."""
    found, modules = [], [root_module(document)]
    while modules:
        module = modules.pop()
        found += [r for r in module.get("resources", []) if r.get("type") == kind]
        modules += module.get("child_modules", [])
    return found


class Deployment:
    """The deployed resources of one applied state, by name."""

    def __init__(self, state, name):
        self.name = name
        self.tables = {r["values"]["name"]: r["values"] for r in resources_of(state, "aws_dynamodb_table")}
        self.queues = {r["values"]["name"]: r["values"]["arn"] for r in resources_of(state, "aws_sqs_queue")}
        self.topics = {r["values"]["name"]: r["values"]["arn"] for r in resources_of(state, "aws_sns_topic")}
        apis = resources_of(state, "aws_apigatewayv2_api")
        stages = resources_of(state, "aws_apigatewayv2_stage")
        if len(apis) != 1 or len(stages) != 1:
            raise Failure(f"expected one WebSocket API and one stage in the state, found {len(apis)} and {len(stages)}")
        self.execution_arn = apis[0]["values"]["execution_arn"]
        self.stage = stages[0]["values"]["name"]

    def by_suffix(self, named, local_name):
        """The deployed resource whose name is `name` + the longest suffix `local_name` ends with."""
        best = None
        for deployed_name, value in named.items():
            suffix = deployed_name[len(self.name):]
            if deployed_name.startswith(self.name) and suffix and local_name.endswith(suffix):
                if best is None or len(suffix) > len(best[0]):
                    best = (suffix, value)
        return best and best[1]

    def deployed_arn(self, local_arn):
        """The ARN AWS would compute for the deployed counterpart of a local resource, or None."""
        if local_arn == "*":
            return "*"
        parts = local_arn.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn":
            return None
        service, rest = parts[2], parts[5]
        if service == "dynamodb" and rest.startswith("table/"):
            path = rest[len("table/"):].split("/")
            table = self.by_suffix(self.tables, path[0])
            if table is None:
                return None
            if len(path) == 1:
                return table["arn"]
            if len(path) == 3 and path[1] == "index":
                return f"{table['arn']}/index/{path[2]}"
            if len(path) == 3 and path[1] == "stream":
                return table.get("stream_arn") or None
            return None
        if service == "sqs":
            return self.by_suffix(self.queues, rest)
        if service == "sns":
            return self.by_suffix(self.topics, rest)
        if service == "execute-api":
            segments = rest.split("/", 2)
            return f"{self.execution_arn}/{self.stage}/{segments[2]}" if len(segments) == 3 else None
        return None


def role_policies(document, name):
    """{access key id: [policy document, …]} of the checked roles' inline policies."""
    by_role = collections.defaultdict(list)
    for resource in resources_of(document, "aws_iam_role_policy"):
        role = resource["values"]["role"]
        for key, (suffix, _services) in CHECKED_ROLES.items():
            if role == name + suffix:
                by_role[key].append(json.loads(resource["values"]["policy"]))
    for kind in ("aws_iam_role_policy_attachment", "aws_iam_role_policy_attachments_exclusive"):
        if resources_of(document, kind):
            raise Failure(f"the state has {kind}: this check evaluates inline policies only; extend it first")
    return by_role


def allowed(policies, action, resource):
    results = [IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource) for policy in policies]
    return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results


def read_calls(path):
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def needs_by_role(calls, deployment):
    """{role: {(action, deployed resource): [calls…]}}, and the problems found while mapping."""
    needs = collections.defaultdict(lambda: collections.defaultdict(list))
    problems = []
    for call in calls:
        if call["caller"] not in CHECKED_ROLES:
            continue
        for need in call["needs"]:
            resource = deployment.deployed_arn(need["resource"])
            if resource is None:
                problems.append(
                    f"{call['caller']} called {call['call']} on {need['resource']}, which matches no resource "
                    f"modules/sumu creates: a new resource the module must create and grant, or a wrong name"
                )
                continue
            needs[call["caller"]][(need["action"], resource)].append(call)
    return needs, problems


def coverage_problems(needs):
    problems = []
    for role, (_suffix, services) in CHECKED_ROLES.items():
        seen = {action.split(":")[0] for action, _resource in needs.get(role, {})}
        missing = services - seen
        if missing:
            problems.append(
                f"no {', '.join(sorted(missing))} call of {role} was recorded: the suites did not run it, or its "
                f"calls are not signed with its role (local/sumu-local/src/roles.rs) — the check would prove nothing"
            )
    return problems


def denials(needs, policies):
    found = []
    for role, role_needs in needs.items():
        for (action, resource), made_by in sorted(role_needs.items()):
            if not allowed(policies.get(role, []), action, resource):
                example = made_by[0]
                found.append(
                    f"DENIED {role}: {action} on {resource} ({len(made_by)} call(s), e.g. {example['call']}): "
                    f"no statement of the role allows it"
                )
    return found


def shown(resource):
    """A resource as the report lists it: one line for all the connection ids of `@connections`."""
    head, marker, _id = resource.partition("/@connections/")
    return f"{head}{marker}{{id}}" if marker else resource


def report(needs):
    for role, role_needs in sorted(needs.items()):
        lines = collections.Counter()
        for (action, resource), made_by in role_needs.items():
            lines[(action, shown(resource))] += len(made_by)
        print(f"  {role}: {sum(lines.values())} calls")
        for (action, resource), count in sorted(lines.items()):
            print(f"    {action} on {resource} ({count})")


def without_statement(policies, statement):
    """The policies with every copy of `statement` removed (a configuration variant repeats the
    statements it shares with the applied one)."""
    changed = copy.deepcopy(policies)
    for policy in changed:
        policy["Statement"] = [s for s in policy["Statement"] if s != statement]
    return changed


def prove(needs, policies, deployment):
    """Shows the check fails when a needed statement is removed or a resource is wrong."""
    problems, unexercised = [], []
    for role, role_policies_list in sorted(policies.items()):
        role_needs = needs.get(role, {})
        statements = []
        for policy in role_policies_list:
            statements += [s for s in policy["Statement"] if s not in statements]
        for s_index, statement in enumerate(statements):
            sid = statement.get("Sid", f"#{s_index}")
            single = [{"Version": "2012-10-17", "Statement": [statement]}]
            served = [n for n in role_needs if allowed(single, *n)]
            if not served:
                unexercised.append(f"{role} {sid}")
                continue
            reduced = without_statement(role_policies_list, statement)
            lost = [n for n in served if not allowed(reduced, *n)]
            if lost:
                print(f"  without {role} {sid}: {len(lost)} need(s) denied, e.g. {lost[0][0]} on {shown(lost[0][1])}")
            else:
                problems.append(f"{role} {sid} is redundant: every call it allows another statement allows too")
    connections = next((t for name, t in deployment.tables.items() if name.endswith("-connections")), None)
    if connections is None:
        problems.append("no connections table in the state")
    else:
        wrong = connections["arn"].replace("-connections", "-connections-elsewhere")
        renamed = {
            role: json.loads(json.dumps(docs).replace(json.dumps(connections["arn"])[1:-1], wrong))
            for role, docs in policies.items()
        }
        caught = [d for d in denials(needs, renamed) if connections["arn"] in d]
        if caught:
            print(f"  with the connections table's ARN made wrong ({wrong}): {len(caught)} need(s) denied")
        else:
            problems.append("a wrong connections-table ARN in the policies was not caught")
    if unexercised:
        print("  statements no recorded call used (not exercised locally): " + ", ".join(unexercised))
    return problems


def lint(policies_by_source):
    from parliament import analyze_policy_string

    justified = json.loads((HERE / "lint-justified.json").read_text())
    problems = []
    for source, policy in policies_by_source:
        analyzed = analyze_policy_string(json.dumps(policy), include_community_auditors=True)
        for finding in analyzed.findings:
            key = f"{finding.issue} {source}"
            detail = json.dumps(finding.detail, default=str)[:300]
            reason = justified.get(key)
            actions = {d.get("action") for d in finding.detail} if isinstance(finding.detail, list) else None
            # A justification names the actions it covers: any other action still fails.
            if reason and actions is not None and actions <= set(reason["actions"]):
                print(f"  parliament {finding.issue} on {source} ({', '.join(sorted(actions))}): justified: {reason['why']}")
            else:
                problems.append(f"parliament {finding.issue} on {source}: {detail} (fix it, or justify it in tests/iam/lint-justified.json as {key!r})")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description="Check recorded AWS calls against the applied IAM policies.")
    parser.add_argument("--calls", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--name", required=True)
    parser.add_argument("--prove", action="store_true")
    parser.add_argument("--lint", action="store_true")
    args = parser.parse_args(argv)

    state = json.loads(pathlib.Path(args.state).read_text())
    deployment = Deployment(state, args.name)
    applied = role_policies(state, args.name)
    policies = {role: list(docs) for role, docs in applied.items()}
    for variant_path in args.variant:
        for role, docs in role_policies(json.loads(pathlib.Path(variant_path).read_text()), args.name).items():
            policies.setdefault(role, []).extend(doc for doc in docs if doc not in policies[role])
    calls = read_calls(args.calls)
    needs, problems = needs_by_role(calls, deployment)
    problems += coverage_problems(needs)
    print(f"IAM check: {len(calls)} calls recorded, against the policies of {args.name}")
    report(needs)
    problems += denials(needs, policies)
    if not problems and args.prove:
        print("IAM check can fail:")
        problems += prove(needs, policies, deployment)
    if args.lint:
        # Permission policies only: parliament reads every policy as one, and calls a trust policy
        # (no Resource, by design) malformed.
        sources = [
            (
                f"{resource['values']['role'].replace(args.name, '{name}', 1)}/{resource['values']['name']}",
                json.loads(resource["values"]["policy"]),
            )
            for resource in resources_of(state, "aws_iam_role_policy")
        ]
        print(f"parliament on {len(sources)} policies")
        problems += lint(sources)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"IAM check failed: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("IAM check passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as failure:
        print(f"IAM check failed: {failure}", file=sys.stderr)
        sys.exit(1)
