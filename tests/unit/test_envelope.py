"""The message envelope: what the client and the runtime write, what the runtime reads."""

from __future__ import annotations

import json

from crmjobs.envelope import read_body, run_message


def test_a_run_message_reads_back_as_its_run_and_payload():
    body = read_body(run_message("run_1", {"workspaceId": "ws-1", "prospectId": "p-1"}))
    assert body.is_envelope
    assert (body.run_id, body.payload) == ("run_1", {"workspaceId": "ws-1", "prospectId": "p-1"})


def test_a_producers_plain_payload_is_no_envelope():
    plain = read_body(json.dumps({"workspaceId": "ws-1", "prospectId": "p-1"}))
    assert not plain.is_envelope and plain.payload == {"workspaceId": "ws-1", "prospectId": "p-1"}
    # A runId that is not text, or no payload beside it, is a plain payload too.
    assert not read_body(json.dumps({"runId": 7, "payload": {}})).is_envelope
    assert not read_body(json.dumps({"runId": "run_1"})).is_envelope


def test_a_body_that_is_not_json_is_kept_as_text():
    body = read_body("not json {")
    assert not body.is_envelope and body.payload == "not json {"
