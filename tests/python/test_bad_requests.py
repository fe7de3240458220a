"""Bad requests get the codes and reasons of a real API server, and never corrupt stored
data."""

from __future__ import annotations

import json
import signal

import yaml

from conftest import FIXTURES

BASE = "/apis/turnpike.dev/v1alpha1/namespaces/default"


def test_bad_requests(crds):
    s = crds
    s.kubectl("apply", "-f", str(FIXTURES / "restapi.yaml"), "-f", str(FIXTURES / "stage.yaml"))
    before = s.raw("GET", f"{BASE}/stages/petstore-prod")[1]

    # Malformed JSON / YAML
    code, st = s.raw("POST", f"{BASE}/stages", "{not json")
    assert (code, st["reason"], st["kind"]) == (400, "BadRequest", "Status")
    code, st = s.raw("PATCH", f"{BASE}/stages/petstore-prod?fieldManager=t", "a: [b",
                     content_type="application/apply-patch+yaml")
    assert (code, st["reason"]) == (400, "BadRequest")
    code, st = s.raw("PATCH", f"{BASE}/stages/petstore-prod", "[{\"op\": \"nope\"}]",
                     content_type="application/json-patch+json")
    assert code in (400, 422)
    # Unknown kinds and groups
    code, st = s.raw("GET", f"{BASE}/widgets")
    assert (code, st["reason"]) == (404, "NotFound")
    code, st = s.raw("GET", "/apis/nothing.example.com/v1/things")
    assert (code, st["reason"]) == (404, "NotFound")
    code, st = s.raw("POST", "/api/v1/namespaces/default/configmaps",
                     json.dumps({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}}))
    assert (code, st["reason"]) == (400, "BadRequest")
    # Schema violations
    bad = yaml.safe_load((FIXTURES / "stage-invalid.yaml").read_text())
    code, st = s.raw("POST", f"{BASE}/stages", json.dumps(bad))
    assert (code, st["reason"]) == (422, "Invalid")
    assert st["details"]["causes"] == [{
        "reason": "FieldValueInvalid",
        "field": "spec.canarySettings.percentTraffic",
        "message": "Invalid value: 150: spec.canarySettings.percentTraffic in body should be less than or equal to 100",
    }]
    missing = {"apiVersion": "turnpike.dev/v1alpha1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}}
    code, st = s.raw("POST", f"{BASE}/deployments", json.dumps(missing))
    assert (code, st["reason"]) == (422, "Invalid")
    assert st["details"]["causes"][0] == {"reason": "FieldValueRequired", "field": "spec.restApiRef",
                                          "message": "Required value"}
    # Wrong resourceVersion
    stale = dict(before)
    stale["metadata"] = dict(before["metadata"], resourceVersion="1")
    code, st = s.raw("PUT", f"{BASE}/stages/petstore-prod", json.dumps(stale))
    assert (code, st["reason"]) == (409, "Conflict")
    # No token
    code, st = s.raw("GET", f"{BASE}/stages", token=False)
    assert (code, st["reason"]) == (401, "Unauthorized")
    # Formats we do not speak
    code, st = s.raw("GET", f"{BASE}/stages", accept="application/vnd.kubernetes.protobuf")
    assert (code, st["reason"]) == (406, "NotAcceptable")
    code, st = s.raw("PATCH", f"{BASE}/stages/petstore-prod", "x", content_type="text/plain")
    assert (code, st["reason"]) == (415, "UnsupportedMediaType")
    # Wrong name / namespace in the body
    other = dict(before, metadata=dict(before["metadata"], name="other"))
    code, st = s.raw("PUT", f"{BASE}/stages/petstore-prod", json.dumps(other))
    assert (code, st["reason"]) == (400, "BadRequest")
    # Nothing changed.
    after = s.raw("GET", f"{BASE}/stages/petstore-prod")[1]
    assert after == before

    # A watch from before a restart's window is 410 Gone / Expired.
    s.kill(signal.SIGKILL)
    s.start()
    code, st = s.raw("GET", f"{BASE}/stages?watch=true&resourceVersion=2")
    assert (code, st["reason"]) == (410, "Expired")
    assert s.raw("GET", f"{BASE}/stages/petstore-prod")[1] == before
