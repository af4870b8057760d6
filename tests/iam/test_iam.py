"""Tests of the IAM check's parts (calls.py, check.py), and the measurement that decided its design:
moto's own IAM enforcement cannot tell a right resource from a wrong one for DynamoDB and SNS.

Run by scripts/lib/iam.sh: python -m unittest discover -s tests/iam -p 'test_*.py'
"""

import contextlib
import io
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import calls  # noqa: E402
import check  # noqa: E402

REGION = "us-east-1"
ACCOUNT = calls.LOCAL_ACCOUNT
VENV_BIN = pathlib.Path(__file__).resolve().parents[2] / ".venv" / "bin"


def signed(key, service):
    return f"AWS4-HMAC-SHA256 Credential={key}/20261204/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0"


class Describe(unittest.TestCase):
    def dynamodb(self, operation, body):
        headers = {"authorization": signed("k", "dynamodb"), "x-amz-target": f"DynamoDB_20120810.{operation}"}
        return calls.describe(headers, "/", json.dumps(body).encode())

    def test_a_dynamodb_item_call_is_authorized_on_its_table(self):
        self.assertEqual(
            self.dynamodb("GetItem", {"TableName": "s-connections", "Key": {}}),
            ("GetItem", [{"action": "dynamodb:GetItem", "resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/s-connections"}]),
        )

    def test_a_query_of_an_index_is_authorized_on_the_index(self):
        _call, needs = self.dynamodb("Query", {"TableName": "t", "IndexName": "connection_id-index"})
        self.assertEqual(needs[0]["resource"], f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/t/index/connection_id-index")

    def test_a_transaction_is_authorized_item_by_item(self):
        _call, needs = self.dynamodb(
            "TransactWriteItems",
            {"TransactItems": [{"Put": {"TableName": "subs"}}, {"Update": {"TableName": "conns"}}, {"ConditionCheck": {"TableName": "conns"}}]},
        )
        self.assertEqual(
            [(n["action"], n["resource"].rsplit("/", 1)[1]) for n in needs],
            [("dynamodb:PutItem", "subs"), ("dynamodb:UpdateItem", "conns"), ("dynamodb:ConditionCheckItem", "conns")],
        )

    def test_a_batch_write_is_authorized_on_every_table_it_names(self):
        _call, needs = self.dynamodb("BatchWriteItem", {"RequestItems": {"a": [], "b": []}})
        self.assertEqual(sorted(n["resource"].rsplit("/", 1)[1] for n in needs), ["a", "b"])
        self.assertEqual({n["action"] for n in needs}, {"dynamodb:BatchWriteItem"})

    def test_get_records_is_authorized_on_the_stream_its_iterator_names(self):
        stream = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/t/stream/2026-12-04T00:00:00.000"
        headers = {"authorization": signed("k", "dynamodb"), "x-amz-target": "DynamoDBStreams_20120810.GetRecords"}
        described = calls.describe(headers, "/", json.dumps({"ShardIterator": f"{stream}|1|abc"}).encode())
        self.assertEqual(described, ("GetRecords", [{"action": "dynamodb:GetRecords", "resource": stream}]))

    def test_sqs_calls_in_both_protocols_are_authorized_on_the_queue(self):
        url = f"http://127.0.0.1:5000/{ACCOUNT}/s-notifications"
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:s-notifications"
        json_call = calls.describe(
            {"authorization": signed("k", "sqs"), "x-amz-target": "AmazonSQS.DeleteMessageBatch"},
            "/",
            json.dumps({"QueueUrl": url}).encode(),
        )
        self.assertEqual(json_call, ("DeleteMessageBatch", [{"action": "sqs:DeleteMessage", "resource": arn}]))
        query_call = calls.describe(
            {"authorization": signed("k", "sqs")},
            "/",
            urllib.parse.urlencode({"Action": "SendMessage", "QueueUrl": url, "MessageBody": "{}"}).encode(),
        )
        self.assertEqual(query_call, ("SendMessage", [{"action": "sqs:SendMessage", "resource": arn}]))

    def test_an_sns_publish_is_authorized_on_its_topic(self):
        topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:s-messages"
        described = calls.describe(
            {"authorization": signed("k", "sns")}, "/", urllib.parse.urlencode({"Action": "Publish", "TopicArn": topic}).encode()
        )
        self.assertEqual(described, ("Publish", [{"action": "sns:Publish", "resource": topic}]))

    def test_an_unsigned_request_is_not_a_call(self):
        self.assertIsNone(calls.describe({}, "/", b"{}"))


def table_values(name, suffix, stream):
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}{suffix}"
    return {"name": f"{name}{suffix}", "arn": arn, "stream_arn": f"{arn}/stream/label" if stream else None}


def state(name, policies):
    """A `terraform show -json`-shaped state with the module's resources and the given policies:
    its four tables (connections and subscriptions with a stream, history and members without)."""
    tables = [("-connections", True), ("-subscriptions", True), ("-history", False), ("-members", False)]
    resources = [{"type": "aws_dynamodb_table", "values": table_values(name, suffix, stream)} for suffix, stream in tables]
    resources += [
        {"type": "aws_sqs_queue", "values": {"name": f"{name}-notifications", "arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}-notifications"}},
        {"type": "aws_sqs_queue", "values": {"name": f"{name}-notifications-dlq", "arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}-notifications-dlq"}},
        {"type": "aws_sns_topic", "values": {"name": f"{name}-messages", "arn": f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}-messages"}},
        {"type": "aws_apigatewayv2_api", "values": {"execution_arn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123"}},
        {"type": "aws_apigatewayv2_stage", "values": {"name": "prod"}},
    ]
    for role_suffix, policy in policies.items():
        resources.append({"type": "aws_iam_role_policy", "values": {"role": f"{name}{role_suffix}", "name": "p", "policy": json.dumps(policy)}})
    return {"values": {"root_module": {"child_modules": [{"resources": resources}]}}}


def statement(sid, action, resource):
    return {"Sid": sid, "Effect": "Allow", "Action": [action], "Resource": [resource]}


class Check(unittest.TestCase):
    name = "dep"
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/dep-connections"

    def policies(self, pusher_statements):
        return {
            "-pusher": {"Version": "2012-10-17", "Statement": pusher_statements},
            "-presence": {"Version": "2012-10-17", "Statement": [statement("Stream", "dynamodb:GetRecords", f"{self.table}/stream/label")]},
            "-apigw-integrations": {
                "Version": "2012-10-17",
                "Statement": [
                    statement("Put", "dynamodb:PutItem", self.table),
                    statement("Queue", "sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:dep-notifications"),
                    statement("Topic", "sns:Publish", f"arn:aws:sns:{REGION}:{ACCOUNT}:dep-messages"),
                ],
            },
        }

    def recorded(self):
        """Calls of the local stack `e2e-x` (other names than the deployment's, as in the suites)."""
        local_table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/e2e-x-connections"
        return [
            {"caller": "sumu-role-pusher", "call": "dynamodb:GetItem", "needs": [{"action": "dynamodb:GetItem", "resource": local_table}]},
            {"caller": "sumu-role-pusher", "call": "sqs:ReceiveMessage", "needs": [{"action": "sqs:ReceiveMessage", "resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:e2e-x-notifications"}]},
            {"caller": "sumu-role-pusher", "call": "POST /@connections", "needs": [{"action": "execute-api:ManageConnections", "resource": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:sumulocal/dev/POST/@connections/c1"}]},
            {"caller": "sumu-role-presence", "call": "dynamodb:GetRecords", "needs": [{"action": "dynamodb:GetRecords", "resource": f"{local_table}/stream/2026"}]},
            {"caller": "sumu-role-api-gateway", "call": "dynamodb:PutItem", "needs": [{"action": "dynamodb:PutItem", "resource": local_table}]},
            {"caller": "sumu-role-api-gateway", "call": "sqs:SendMessage", "needs": [{"action": "sqs:SendMessage", "resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:e2e-x-notifications"}]},
            {"caller": "sumu-role-api-gateway", "call": "sns:Publish", "needs": [{"action": "sns:Publish", "resource": f"arn:aws:sns:{REGION}:{ACCOUNT}:e2e-x-messages"}]},
            {"caller": "test", "call": "dynamodb:Scan", "needs": [{"action": "dynamodb:Scan", "resource": local_table}]},
        ]

    def pusher_statements(self):
        return [
            statement("Read", "dynamodb:GetItem", self.table),
            statement("Consume", "sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:dep-notifications"),
            statement("Post", "execute-api:ManageConnections", f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/prod/POST/@connections/*"),
        ]

    def run_check(self, policies, recorded, *flags):
        with tempfile.TemporaryDirectory() as work:
            state_path, calls_path = pathlib.Path(work, "state.json"), pathlib.Path(work, "calls.jsonl")
            state_path.write_text(json.dumps(state(self.name, policies)))
            calls_path.write_text("".join(json.dumps(c) + "\n" for c in recorded))
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = check.main(["--calls", str(calls_path), "--state", str(state_path), "--name", self.name, *flags])
            return status, out.getvalue(), err.getvalue()

    def test_calls_allowed_by_the_deployed_policies_pass_and_the_proof_shows_each_statement_is_needed(self):
        status, out, err = self.run_check(self.policies(self.pusher_statements()), self.recorded(), "--prove")
        self.assertEqual(status, 0, err)
        self.assertIn("without sumu-role-pusher Read: 1 need(s) denied", out)
        self.assertIn(f"dynamodb:GetItem on {self.table}", out)
        self.assertIn(f"execute-api:ManageConnections on arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/prod/POST/@connections/{{id}} (1)", out)

    def test_a_missing_statement_is_a_denial_naming_the_call(self):
        status, _out, err = self.run_check(self.policies(self.pusher_statements()[1:]), self.recorded())
        self.assertEqual(status, 1)
        self.assertIn(f"DENIED sumu-role-pusher: dynamodb:GetItem on {self.table}", err)

    def test_a_statement_on_the_wrong_table_is_a_denial(self):
        wrong = self.pusher_statements()
        wrong[0] = statement("Read", "dynamodb:GetItem", self.table.replace("dep-connections", "dep-subscriptions"))
        status, _out, err = self.run_check(self.policies(wrong), self.recorded())
        self.assertEqual(status, 1)
        self.assertIn("DENIED sumu-role-pusher: dynamodb:GetItem", err)

    def test_a_resource_the_module_does_not_create_is_a_failure(self):
        recorded = self.recorded() + [
            {"caller": "sumu-role-pusher", "call": "sqs:SendMessage", "needs": [{"action": "sqs:SendMessage", "resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:e2e-x-elsewhere"}]}
        ]
        status, _out, err = self.run_check(self.policies(self.pusher_statements()), recorded)
        self.assertEqual(status, 1)
        self.assertIn("e2e-x-elsewhere, which matches no resource modules/sumu creates", err)

    def test_a_component_never_seen_fails_the_check(self):
        recorded = [c for c in self.recorded() if c["caller"] != "sumu-role-presence"]
        status, _out, err = self.run_check(self.policies(self.pusher_statements()), recorded)
        self.assertEqual(status, 1)
        self.assertIn("no dynamodb call of sumu-role-presence was recorded", err)

    def presence_recorded(self, presence_needs):
        """The usual calls, with presence's replaced by `presence_needs` (action, local resource)."""
        return [c for c in self.recorded() if c["caller"] != "sumu-role-presence"] + [
            {"caller": "sumu-role-presence", "call": action, "needs": [{"action": action, "resource": resource}]}
            for action, resource in presence_needs
        ]

    def test_the_members_table_and_the_subscriptions_stream_map_to_the_deployed_ones(self):
        local = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/e2e-x"
        deployed = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/dep"
        policies = self.policies(self.pusher_statements())
        policies["-presence"]["Statement"] = [
            statement("Stream", "dynamodb:GetRecords", f"{self.table}/stream/label"),
            statement("SubscriptionsStream", "dynamodb:GetRecords", f"{deployed}-subscriptions/stream/label"),
            statement("Members", "dynamodb:UpdateItem", f"{deployed}-members"),
        ]
        recorded = self.presence_recorded([
            ("dynamodb:GetRecords", f"{local}-connections/stream/2026"),
            ("dynamodb:GetRecords", f"{local}-subscriptions/stream/2026"),
            ("dynamodb:UpdateItem", f"{local}-members"),
        ])
        status, out, err = self.run_check(policies, recorded, "--prove")
        self.assertEqual(status, 0, err)
        self.assertIn(f"dynamodb:UpdateItem on {deployed}-members (1)", out)
        self.assertIn(f"dynamodb:GetRecords on {deployed}-subscriptions/stream/label (1)", out)
        self.assertIn("without sumu-role-presence SubscriptionsStream: 1 need(s) denied", out)
        self.assertIn("without sumu-role-presence Members: 1 need(s) denied", out)

    def test_a_grant_on_the_connections_stream_does_not_cover_the_subscriptions_stream(self):
        local = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/e2e-x"
        recorded = self.presence_recorded([
            ("dynamodb:GetRecords", f"{local}-connections/stream/2026"),
            ("dynamodb:GetRecords", f"{local}-subscriptions/stream/2026"),
        ])
        status, _out, err = self.run_check(self.policies(self.pusher_statements()), recorded)
        self.assertEqual(status, 1)
        self.assertIn(
            f"DENIED sumu-role-presence: dynamodb:GetRecords on arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/dep-subscriptions/stream/label", err
        )

    def test_a_members_grant_on_the_wrong_table_is_a_denial(self):
        local = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/e2e-x"
        policies = self.policies(self.pusher_statements())
        policies["-presence"]["Statement"].append(
            statement("Members", "dynamodb:UpdateItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/dep-history")
        )
        recorded = self.presence_recorded([
            ("dynamodb:GetRecords", f"{local}-connections/stream/2026"),
            ("dynamodb:UpdateItem", f"{local}-members"),
        ])
        status, _out, err = self.run_check(policies, recorded)
        self.assertEqual(status, 1)
        self.assertIn(f"DENIED sumu-role-presence: dynamodb:UpdateItem on arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/dep-members", err)

    def test_a_redundant_statement_is_reported_by_the_proof(self):
        doubled = self.pusher_statements() + [statement("Again", "dynamodb:GetItem", self.table)]
        status, _out, err = self.run_check(self.policies(doubled), self.recorded(), "--prove")
        self.assertEqual(status, 1)
        self.assertIn("sumu-role-pusher Read is redundant", err)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoEnforcement(unittest.TestCase):
    """What moto's own IAM enforcement (INITIAL_NO_AUTH_ACTION_COUNT) decides for a policy naming the
    right resource and one naming a wrong one. The measured answer is why the IAM check records the
    calls and evaluates them itself: moto checks the resource of SQS calls, but authorizes DynamoDB
    and SNS calls against the resource "*", so a least-privilege statement naming the right table or
    topic is refused exactly like one naming a wrong one (and only a "*" statement passes)."""

    SETUP_CALLS = 9  # the requests below made before enforcement starts

    @classmethod
    def setUpClass(cls):
        import boto3

        cls.boto3 = boto3
        port = free_port()
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(cls.SETUP_CALLS))
        cls.server = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        cls.endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()
        cls.server.wait()

    def client(self, service, key=("root", "root")):
        return self.boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                                 aws_access_key_id=key[0], aws_secret_access_key=key[1])

    def test_moto_refuses_right_and_wrong_dynamodb_and_sns_resources_alike(self):
        # The setup: SETUP_CALLS requests, all before enforcement starts.
        iam = self.client("iam")
        table = self.client("dynamodb").create_table(
            TableName="t", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        )["TableDescription"]["TableArn"]
        queue_url = self.client("sqs").create_queue(QueueName="q")["QueueUrl"]
        queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:q"
        topic = self.client("sns").create_topic(Name="n")["TopicArn"]
        keys = {}
        for user, suffix in (("right", ""), ("wrong", "-other")):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [
                    statement("Table", "dynamodb:PutItem", table + suffix),
                    statement("Queue", "sqs:SendMessage", queue + suffix),
                    statement("Topic", "sns:Publish", topic + suffix),
                ],
            }))
            created = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (created["AccessKeyId"], created["SecretAccessKey"])

        def outcome(user, call):
            try:
                call(user)
                return "allowed"
            except self.boto3.exceptions.botocore.exceptions.ClientError as error:
                status = error.response["ResponseMetadata"]["HTTPStatusCode"]
                return "denied" if status == 403 else f"failed: {error}"

        measured = {
            user: {
                "dynamodb": outcome(user, lambda u: self.client("dynamodb", keys[u]).put_item(TableName="t", Item={"k": {"S": "1"}})),
                "sqs": outcome(user, lambda u: self.client("sqs", keys[u]).send_message(QueueUrl=queue_url, MessageBody="m")),
                "sns": outcome(user, lambda u: self.client("sns", keys[u]).publish(TopicArn=topic, Message="m")),
            }
            for user in ("right", "wrong")
        }
        self.assertEqual(measured["right"], {"dynamodb": "denied", "sqs": "allowed", "sns": "denied"}, measured)
        self.assertEqual(measured["wrong"], {"dynamodb": "denied", "sqs": "denied", "sns": "denied"}, measured)


if __name__ == "__main__":
    unittest.main()
