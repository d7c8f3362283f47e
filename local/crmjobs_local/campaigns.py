"""What the campaigns need locally beyond what the template provisions: the unsubscribe
signing secret (Secrets Manager is not provisioned by the local runtime) and the
unsubscribe link's base URL (the HTTP API's URL is not known locally). Values the template
did provide are left alone. The send rate comes from the MaxSendRate parameter
(LOCAL_PARAMETERS): moto has no SES GetAccount."""

from __future__ import annotations

import os
import secrets

from crmjobs.adapters import aws

#: Stack parameters for a local runtime that sends campaigns (messages per second).
LOCAL_PARAMETERS = {"MaxSendRate": "50"}
LOCAL_UNSUBSCRIBE_URL = "http://127.0.0.1:8787/unsubscribe"
SECRET_NAME = "crmjobs-local-unsubscribe-signing"


def prepare(*, unsubscribe_url: str | None = None) -> None:
    """Set the campaign settings in this process's environment (the local runtime restores
    its environment when it stops)."""
    if not os.environ.get("UNSUBSCRIBE_SECRET_ARN"):
        client = aws.client("secretsmanager")
        try:
            arn = client.describe_secret(SecretId=SECRET_NAME)["ARN"]
        except client.exceptions.ResourceNotFoundException:
            arn = client.create_secret(
                Name=SECRET_NAME, SecretString=secrets.token_urlsafe(48)
            )["ARN"]
        os.environ["UNSUBSCRIBE_SECRET_ARN"] = arn
    if unsubscribe_url or not os.environ.get("UNSUBSCRIBE_URL"):
        os.environ["UNSUBSCRIBE_URL"] = unsubscribe_url or LOCAL_UNSUBSCRIBE_URL
