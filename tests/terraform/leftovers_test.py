"""`terraform destroy` of the local stack leaves nothing behind in moto.

Lists, service by service, every resource whose name starts with the stack's name. Run twice by
scripts/lib/terraform.sh: with SUMU_TF_EXPECT=present after the apply (every kind of resource is
found, which proves the queries can see the stack at all, and the tables are exactly the module's)
and with SUMU_TF_EXPECT=absent after the destroy (nothing is found).

Environment: SUMU_MOTO_ENDPOINT, SUMU_TF_NAME (the stack's name prefix), SUMU_TF_EXPECT
(present | absent), SUMU_TF_REGION (default us-east-1).
"""

import os
import unittest

import boto3


def client(service):
    return boto3.client(
        service,
        endpoint_url=os.environ["SUMU_MOTO_ENDPOINT"],
        region_name=os.environ.get("SUMU_TF_REGION", "us-east-1"),
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def paginated(service, operation, key, **kwargs):
    return [item for page in client(service).get_paginator(operation).paginate(**kwargs) for item in page[key]]


def stack_resources(name):
    """The stack's resources by kind: names (or ARNs/URLs) that start with or contain its prefix."""
    prefix = f"{name}-"
    return {
        "WebSocket API": [a["Name"] for a in client("apigatewayv2").get_apis()["Items"] if a["Name"] == name],
        "DynamoDB table": [t for t in paginated("dynamodb", "list_tables", "TableNames") if t.startswith(prefix)],
        "SQS queue": client("sqs").list_queues(QueueNamePrefix=prefix).get("QueueUrls", []),
        "SNS topic": [
            t["TopicArn"] for t in paginated("sns", "list_topics", "Topics") if t["TopicArn"].split(":")[-1].startswith(prefix)
        ],
        "Lambda function": [
            f["FunctionName"] for f in paginated("lambda", "list_functions", "Functions") if f["FunctionName"].startswith(prefix)
        ],
        "IAM role": [r["RoleName"] for r in paginated("iam", "list_roles", "Roles") if r["RoleName"].startswith(prefix)],
        "log group": [
            g["logGroupName"]
            for p in (f"/aws/lambda/{prefix}", f"/aws/apigateway/{name}/")
            for g in paginated("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=p)
        ],
        "CloudWatch alarm": [
            a["AlarmName"] for a in paginated("cloudwatch", "describe_alarms", "MetricAlarms", AlarmNamePrefix=prefix)
        ],
    }


class StackLifecycle(unittest.TestCase):
    def test_stack_resources(self):
        name = os.environ["SUMU_TF_NAME"]
        expect = os.environ["SUMU_TF_EXPECT"]
        self.assertIn(expect, ("present", "absent"))
        for kind, found in stack_resources(name).items():
            with self.subTest(kind=kind):
                if expect == "present":
                    self.assertTrue(found, f"no {kind} of stack {name} found after apply")
                else:
                    self.assertEqual(found, [], f"{kind} left behind by destroy")

    def test_every_table_of_the_module(self):
        """After the apply the stack has exactly the module's three tables (the history table is
        created even when no namespace keeps history), keyed as the Lambdas expect."""
        name = os.environ["SUMU_TF_NAME"]
        if os.environ["SUMU_TF_EXPECT"] != "present":
            self.skipTest("only after the apply (test_stack_resources checks the destroy)")
        tables = stack_resources(name)["DynamoDB table"]
        self.assertEqual(sorted(tables), sorted(f"{name}-{t}" for t in ("connections", "subscriptions", "history", "members")))
        history = client("dynamodb").describe_table(TableName=f"{name}-history")["Table"]
        self.assertEqual(
            {(k["AttributeName"], k["KeyType"]) for k in history["KeySchema"]}, {("channel", "HASH"), ("offset", "RANGE")}
        )
        self.assertEqual(
            {(a["AttributeName"], a["AttributeType"]) for a in history["AttributeDefinitions"]}, {("channel", "S"), ("offset", "N")}
        )
        ttl = client("dynamodb").describe_time_to_live(TableName=f"{name}-history")["TimeToLiveDescription"]
        self.assertEqual((ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")), ("ENABLED", "expires_at"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
