"""What IAM authorizes an AWS request as: its actions and the resource ARNs AWS would compute.

Pure functions of a request as it crossed the wire (the SigV4 `Authorization` header, the
`X-Amz-Target` header, the path and the body), used by the recording proxy (recorder.py) and tested
by test_iam.py. The rules follow the Service Authorization Reference:

- DynamoDB: a request names its table (`TableName`); a Query or Scan of an index is authorized on
  `table/NAME/index/INDEX`. A transaction is authorized item by item as the single-item actions
  (`PutItem`, `UpdateItem`, `DeleteItem`, `ConditionCheckItem`, `GetItem`): there is no IAM action
  for the transaction itself. Batch operations are their own actions, on every table they name.
- DynamoDB Streams: signed for `dynamodb`, authorized on the stream ARN; `GetRecords` names only a
  shard iterator, which begins with the stream's ARN (`ARN|1|…`, on AWS and in moto alike).
- SQS: the queue's ARN from its URL (`…/ACCOUNT/NAME`); the batch calls are authorized as the
  single-message actions (`SendMessageBatch` → `sqs:SendMessage`, …).
- SNS: the topic's ARN (`TopicArn`, or `TargetArn`); `PublishBatch` → `sns:Publish`.
"""

import json
import urllib.parse

# moto's default account, where every resource of the local stack lives.
LOCAL_ACCOUNT = "123456789012"

TRANSACT_WRITE_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
SQS_BATCH_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def signer(authorization):
    """(access key id, region, service) of a SigV4 Authorization header, or None."""
    if not authorization or "Credential=" not in authorization:
        return None
    credential = authorization.split("Credential=", 1)[1].split(",", 1)[0].strip()
    parts = credential.split("/")
    if len(parts) < 5 or not parts[0]:
        return None
    return parts[0], parts[2], parts[3]


def need(action, resource):
    return {"action": action, "resource": resource}


def table_arn(region, name):
    return f"arn:aws:dynamodb:{region}:{LOCAL_ACCOUNT}:table/{name}"


def queue_arn(region, url):
    """`arn:aws:sqs:REGION:ACCOUNT:NAME` of a queue URL (`http(s)://host/ACCOUNT/NAME`)."""
    path = urllib.parse.urlsplit(url).path.strip("/").split("/")
    if len(path) != 2:
        return None
    account, name = path
    return f"arn:aws:sqs:{region}:{account}:{name}"


def dynamodb_needs(region, operation, body):
    if operation == "TransactWriteItems":
        needs = []
        for item in body.get("TransactItems", []):
            for kind, action in TRANSACT_WRITE_ACTIONS.items():
                if kind in item:
                    needs.append(need(f"dynamodb:{action}", table_arn(region, item[kind]["TableName"])))
        return needs
    if operation == "TransactGetItems":
        return [
            need("dynamodb:GetItem", table_arn(region, item["Get"]["TableName"]))
            for item in body.get("TransactItems", [])
        ]
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [need(f"dynamodb:{operation}", table_arn(region, name)) for name in body.get("RequestItems", {})]
    name = body.get("TableName")
    if name is None:
        return [need(f"dynamodb:{operation}", "*")]
    resource = table_arn(region, name)
    if body.get("IndexName"):
        resource += f"/index/{body['IndexName']}"
    return [need(f"dynamodb:{operation}", resource)]


def streams_needs(operation, body):
    stream = body.get("StreamArn") or body.get("ShardIterator", "").split("|", 1)[0]
    return [need(f"dynamodb:{operation}", stream or "*")]


def sqs_needs(region, operation, params, path):
    action = SQS_BATCH_ACTIONS.get(operation, operation)
    url = params.get("QueueUrl")
    if url is None and path.strip("/"):
        url = "http://host" + path  # the Query protocol may name the queue by the request path
    if operation == "GetQueueUrl":
        account = params.get("QueueOwnerAWSAccountId", LOCAL_ACCOUNT)
        resource = f"arn:aws:sqs:{region}:{account}:{params.get('QueueName', '')}"
    else:
        resource = (url and queue_arn(region, url)) or "*"
    return [need(f"sqs:{action}", resource)]


def sns_needs(operation, params):
    action = "Publish" if operation == "PublishBatch" else operation
    resource = params.get("TopicArn") or params.get("TargetArn") or "*"
    return [need(f"sns:{action}", resource)]


def form(body):
    return {key: values[0] for key, values in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}


def describe(headers, path, body):
    """(call, needs) of one request to an AWS service, or None when it is not a SigV4-signed call
    to DynamoDB, DynamoDB Streams, SQS or SNS. `headers` maps lower-case names to values; `body`
    is bytes."""
    signed = signer(headers.get("authorization"))
    if signed is None:
        return None
    _key, region, service = signed
    target = headers.get("x-amz-target", "")
    if target.startswith("DynamoDB_20120810."):
        operation = target.split(".", 1)[1]
        return operation, dynamodb_needs(region, operation, json.loads(body or b"{}"))
    if target.startswith("DynamoDBStreams_20120810."):
        operation = target.split(".", 1)[1]
        return operation, streams_needs(operation, json.loads(body or b"{}"))
    if target.startswith("AmazonSQS."):
        operation = target.split(".", 1)[1]
        return operation, sqs_needs(region, operation, json.loads(body or b"{}"), path)
    if service in ("sqs", "sns"):
        params = form(body)
        params.update(form(urllib.parse.urlsplit(path).query.encode()))
        operation = params.get("Action")
        if not operation:
            return None
        if service == "sqs":
            return operation, sqs_needs(region, operation, params, urllib.parse.urlsplit(path).path)
        return operation, sns_needs(operation, params)
    return None
