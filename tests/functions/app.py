"""A Lambda handler, run by the Lambda Runtime Interface Client (awslambdaric) in
tests/proxy_authorizers.rs: a TOKEN authorizer and the function of an AWS_PROXY integration,
written as for AWS Lambda."""

import json


def handler(event, context):
    if event.get("type") == "TOKEN":
        return authorize(event, context)
    return proxy(event, context)


def authorize(event, context):
    token = event.get("authorizationToken", "")
    if token == "Bearer unauthorized":
        # Lambda authorizers say 401 by failing with this message.
        raise Exception("Unauthorized")
    effect = "Allow" if token == "Bearer allow" else "Deny"
    return {
        "principalId": "ric-user",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}
            ],
        },
        "context": {"runtime": "awslambdaric", "invocation": context.aws_request_id},
    }


def proxy(event, context):
    if event["path"].endswith("/boom"):
        raise ValueError("boom")
    authorizer = event["requestContext"].get("authorizer") or {}
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/json"},
        "multiValueHeaders": {"x-seen": ["a", "b"]},
        "body": json.dumps(
            {
                "method": event["httpMethod"],
                "resource": event["resource"],
                "path": event["path"],
                "query": event["queryStringParameters"],
                "principal": authorizer.get("principalId"),
                "runtime": authorizer.get("runtime"),
                "body": event["body"],
            }
        ),
    }
