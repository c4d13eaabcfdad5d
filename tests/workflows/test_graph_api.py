"""A picture of every workflow: `GET /workflows/{id}/graph` (SVG or Mermaid, any saved version),
`POST /workflows/graph` for a spec not stored, and the admin's workflow and version pages."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.utils import quote

from tests.conftest import client_for
from workflows.services import workflow_create, workflow_update

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _examples_env(settings) -> None:
    """The examples' sources name these variables: granted to every tenant here."""
    settings.AGENTFLOW_ALLOWED_ENV = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "SHOP_DATABASE_URL"]


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SVG_NS = "{http://www.w3.org/2000/svg}"
PREVIEW = "/api/v1/workflows/graph"
SCRIPT = "</text><script>alert(1)</script>"
HOSTILE_NAME = '"><svg onload=alert(1)>'


def example(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return spec


def graph_url(workflow_id: str, query: str = "") -> str:
    return f"/api/v1/workflows/{workflow_id}/graph{query}"


def parse_svg(body: bytes) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == f"{SVG_NS}svg"
    return root


def svg_in(page: str) -> ET.Element:
    """The workflow's drawing inside an HTML page."""
    start = page.index('<svg xmlns="http://www.w3.org/2000/svg" class="af-graph"')
    return parse_svg(page[start : page.index("</svg>", start) + len("</svg>")].encode())


def texts(root: ET.Element, cls: str) -> list[str]:
    """The text of every `<text class=cls>` in the drawing, in document order."""
    return [el.text or "" for el in root.iter(f"{SVG_NS}text") if el.get("class") == cls]


def node_groups(root: ET.Element) -> dict[str, ET.Element]:
    return {
        el.get("data-node-id", ""): el
        for el in root.iter(f"{SVG_NS}g")
        if "af-node" in (el.get("class") or "").split()
    }


def hostile_router(name: str = HOSTILE_NAME) -> dict[str, Any]:
    """A valid spec whose router intent (so its edge's condition) is markup."""
    return {
        "name": name,
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "triage",
                "type": "router",
                "metadata": {
                    "strategy": "keyword",
                    "routes": {SCRIPT: ["help"], 'a"]-->b': ["x"]},
                    "default": "other",
                },
            },
            {"id": "helper", "type": "aggregator", "metadata": {"strategy": "merge"}},
            {"id": "fallback", "type": "aggregator", "metadata": {"strategy": "merge"}},
            {"id": "quoted", "type": "aggregator", "metadata": {"strategy": "merge"}},
        ],
        "edges": [
            {"from": "input", "to": "triage"},
            {"from": "triage", "to": "helper", "condition": SCRIPT},
            {"from": "triage", "to": "quoted", "condition": 'a"]-->b'},
            {"from": "triage", "to": "fallback"},
        ],
    }


# --- GET /workflows/{id}/graph -----------------------------------------------------------


def test_the_svg_shows_every_node_with_its_type_conditions_queues_and_the_start(
    tenant, viewer_key
) -> None:
    workflow = workflow_create(tenant=tenant, spec=example("support-desk"), actor="t")
    response = client_for(viewer_key).get(graph_url(workflow.id))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
    root = parse_svg(response.content)
    nodes = node_groups(root)
    assert texts(root, "af-node-id") == [
        "input",
        "router",
        "writer",
        "illustrator",
        "orders",
        "answer",
    ]
    assert nodes["writer"].get("data-node-type") == "llm"
    assert nodes["orders"].get("data-node-type") == "db"
    assert nodes["input"].get("data-start") == "true"
    assert [n for n, g in nodes.items() if g.get("data-start")] == ["input"]
    assert "start" in texts(root, "af-node-type")  # the start marker points at the start node
    assert set(texts(root, "af-condition")) == {"image", "data", "text"}
    assert "queue llm-lane" in texts(root, "af-queue")
    assert "60 req/min · 90,000 tok/min" in texts(root, "af-rate")
    assert "queue llm-lane" in [t for t in texts(root, "af-badge")]  # on the node it feeds
    assert root.findtext(f"{SVG_NS}title") == "Workflow support-desk"


def test_a_loop_shows_its_bound(tenant, viewer_key) -> None:
    workflow = workflow_create(tenant=tenant, spec=example("draft-loop"), actor="t")
    root = parse_svg(client_for(viewer_key).get(graph_url(workflow.id)).content)
    assert texts(root, "af-loop") == ["↻ loop ≤ 3"]
    loops = [g for g in root.iter(f"{SVG_NS}g") if "af-edge-loop" in (g.get("class") or "")]
    assert [(g.get("data-from"), g.get("data-to")) for g in loops] == [("critic", "draft")]


def test_mermaid_by_query_or_by_accept_header(tenant, viewer_key) -> None:
    workflow = workflow_create(tenant=tenant, spec=example("draft-loop"), actor="t")
    api = client_for(viewer_key)
    by_query = api.get(graph_url(workflow.id, "?format=mermaid"))
    by_accept = api.get(graph_url(workflow.id), HTTP_ACCEPT="text/vnd.mermaid")
    assert by_query.status_code == by_accept.status_code == 200
    assert by_query["Content-Type"].startswith("text/vnd.mermaid")
    assert by_query.content == by_accept.content
    text = by_query.content.decode()
    assert text.splitlines()[:2] == ["%% AgentFlow workflow: draft-loop", "flowchart TD"]
    assert '    n2("draft<br/>llm")' in text
    assert '    n3 ==>|"revise<br/>↻ loop ≤ 3"| n2' in text


def test_an_accept_it_cannot_meet_gets_the_svg(tenant, viewer_key) -> None:
    workflow = workflow_create(tenant=tenant, spec=example("draft-loop"), actor="t")
    response = client_for(viewer_key).get(graph_url(workflow.id), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("image/svg+xml")
    assert "Accept" in response["Vary"]  # a cache keeps the SVG and the Mermaid apart


def test_options_describes_the_route_in_json(tenant, viewer_key) -> None:
    workflow = workflow_create(tenant=tenant, spec=example("draft-loop"), actor="t")
    response = client_for(viewer_key).options(graph_url(workflow.id))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["renders"] == ["image/svg+xml", "text/vnd.mermaid"]


def test_a_saved_version_is_drawn_as_it_was(tenant, viewer_key) -> None:
    first = example("draft-loop")
    workflow = workflow_create(tenant=tenant, spec=first, actor="t")
    second = json.loads(json.dumps(first))
    second["nodes"].append(
        {"id": "archive", "type": "aggregator", "metadata": {"strategy": "merge"}}
    )
    second["edges"].append({"from": "publish", "to": "archive"})
    workflow_update(workflow=workflow, spec=second, actor="t")
    api = client_for(viewer_key)
    current = parse_svg(api.get(graph_url(workflow.id)).content)
    old = parse_svg(api.get(graph_url(workflow.id, "?version=1")).content)
    assert "archive" in texts(current, "af-node-id")
    assert "archive" not in texts(old, "af-node-id")
    assert texts(old, "af-node-id") == ["input", "draft", "critic", "publish"]


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("?version=7", 404, None),
        ("?version=0", 400, "version"),
        ("?version=two", 400, "version"),
        ("?version=" + "9" * 5000, 400, "version"),
        ("?format=png", 400, "format"),
    ],
)
def test_a_bad_query_is_a_problem_naming_it(tenant, viewer_key, query, status, field) -> None:
    workflow = workflow_create(tenant=tenant, spec=example("draft-loop"), actor="t")
    response = client_for(viewer_key).get(graph_url(workflow.id, query))
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    if field:
        assert [e["field"] for e in body["errors"]] == [field]


def test_another_tenants_workflow_is_not_found_and_a_key_is_needed(
    tenant, other_admin_key, api
) -> None:
    workflow = workflow_create(tenant=tenant, spec=example("draft-loop"), actor="t")
    assert client_for(other_admin_key).get(graph_url(workflow.id)).status_code == 404
    response = api.get(graph_url(workflow.id))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


# --- POST /workflows/graph ---------------------------------------------------------------


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_spec_not_stored_is_drawn(viewer_key, wrapped) -> None:
    spec = example("parallel-review")
    body = {"spec": spec} if wrapped else spec
    response = client_for(viewer_key).post(PREVIEW, body, format="json")
    assert response.status_code == 200, response.content
    root = parse_svg(response.content)
    assert texts(root, "af-node-id") == [n["id"] for n in spec["nodes"]]


def test_a_spec_not_stored_as_mermaid(viewer_key) -> None:
    response = client_for(viewer_key).post(
        PREVIEW + "?format=mermaid", example("rules-triage"), format="json"
    )
    assert response.status_code == 200
    assert "flowchart TD" in response.content.decode()


def test_an_invalid_spec_is_a_422_with_every_problem_where_it_is(viewer_key) -> None:
    spec = example("draft-loop")
    spec["start_node"] = "nope"
    spec["edges"][1]["to"] = "critik"
    text = json.dumps(spec, indent=2)
    response = client_for(viewer_key).post(PREVIEW, text, content_type="application/json")
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert {(e["type"], e["path"]) for e in errors} >= {
        ("missing_node", "/start_node"),
        ("missing_node", "/edges/1/to"),
    }
    where = next(e for e in errors if e["path"] == "/edges/1/to")
    assert text.splitlines()[where["line"] - 1].strip() == '"to": "critik"'


def test_limits_are_the_validators(viewer_key, settings) -> None:
    settings.AGENTFLOW_MAX_SPEC_NODES = 3
    response = client_for(viewer_key).post(PREVIEW, example("support-desk"), format="json")
    assert response.status_code == 422
    assert [e["type"] for e in response.json()["errors"]] == ["spec_too_large"]


def test_text_no_database_stores_and_a_body_not_json_are_refused(viewer_key) -> None:
    api = client_for(viewer_key)
    spec = example("draft-loop")
    spec["description"] = "nul \u0000 here"
    refused = api.post(PREVIEW, json.dumps(spec), content_type="application/json")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["path"] == "/description"
    broken = api.post(PREVIEW, "{not json", content_type="application/json")
    assert broken.status_code == 400
    assert broken["Content-Type"] == "application/problem+json"


def test_markup_in_a_spec_stays_text_in_the_svg(viewer_key) -> None:
    response = client_for(viewer_key).post(PREVIEW, hostile_router(), format="json")
    assert response.status_code == 200, response.content
    root = parse_svg(response.content)  # well-formed: nothing closed what it should not
    assert not [el for el in root.iter() if el.tag.split("}")[-1] in ("script", "foreignObject")]
    assert SCRIPT in texts(root, "af-condition")
    assert root.findtext(f"{SVG_NS}title") == f"Workflow {HOSTILE_NAME}"
    assert b"<script" not in response.content
    assert b"<svg onload" not in response.content


def test_markup_in_a_spec_stays_inside_its_mermaid_label(viewer_key) -> None:
    response = client_for(viewer_key).post(
        PREVIEW + "?format=mermaid", hostile_router(), format="json"
    )
    text = response.content.decode()
    quoted = next(line for line in text.splitlines() if "#34;#93;" in line)
    assert quoted.strip() == 'n2 -->|"a#34;#93;--#62;b"| n5'  # a"]-->b, one label
    assert "<script>" not in text
    assert '"#60;/text#62;#60;script#62;alert#40;1#41;#60;/script#62;"' in text


# --- the admin -----------------------------------------------------------------------------


def change_url(workflow: Any) -> str:
    return f"/admin/workflows/workflow/{quote(workflow.id)}/change/"


def test_the_admin_change_page_shows_the_graph_first(admin_client, tenant) -> None:
    workflow = workflow_create(tenant=tenant, spec=example("support-desk"), actor="t")
    page = admin_client.get(change_url(workflow)).content.decode()
    root = svg_in(page)
    assert set(texts(root, "af-node-id")) == {n["id"] for n in example("support-desk")["nodes"]}
    assert page.index('class="af-graph"') < page.index('name="spec"')  # above the JSON
    assert "Mermaid text, for docs" in page


def test_the_admin_escapes_a_hostile_spec(admin_client, tenant) -> None:
    workflow = workflow_create(tenant=tenant, spec=hostile_router(), actor="t")
    page = admin_client.get(change_url(workflow)).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "<svg onload" not in page
    assert "&lt;/text&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_each_version_has_a_page_with_its_picture(admin_client, tenant) -> None:
    first = example("draft-loop")
    workflow = workflow_create(tenant=tenant, spec=first, actor="key:abc")
    second = {**first, "description": "v2", "nodes": [*first["nodes"]]}
    second["nodes"][3] = {"id": "ship", "type": "aggregator", "metadata": {"strategy": "merge"}}
    second["edges"] = [*first["edges"][:3], {"from": "critic", "to": "ship", "condition": "done"}]
    workflow_update(workflow=workflow, spec=second, actor="t")
    change = admin_client.get(change_url(workflow)).content.decode()
    link = f"/admin/workflows/workflow/{quote(workflow.id)}/versions/1/"
    assert f'href="{link}"' in change
    page = admin_client.get(link)
    assert page.status_code == 200
    html = page.content.decode()
    root = svg_in(html)
    assert texts(root, "af-node-id") == ["input", "draft", "critic", "publish"]
    assert "Version 1, saved" in html and "key:abc" in html
    missing = admin_client.get(f"/admin/workflows/workflow/{quote(workflow.id)}/versions/9/")
    assert missing.status_code == 404


def test_the_openapi_document_tells_both_formats(api) -> None:
    doc = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for method, path in [
        ("get", "/api/v1/workflows/{workflow_id}/graph"),
        ("post", "/api/v1/workflows/graph"),
    ]:
        operation = doc["paths"][path][method]
        assert list(operation["responses"]["200"]["content"]) == [
            "image/svg+xml",
            "text/vnd.mermaid",
        ]
        formats = [p for p in operation["parameters"] if p["name"] == "format"]
        assert formats[0]["schema"]["enum"] == ["svg", "mermaid"]
        assert "422" in operation["responses"]


def test_a_spec_that_fails_in_the_admin_is_drawn_beside_its_errors(admin_client, tenant) -> None:
    workflow = workflow_create(tenant=tenant, spec=example("draft-loop"), actor="t")
    broken = example("draft-loop")
    broken["edges"][3]["to"] = "publsh"
    url = f"/admin/workflows/workflow/{quote(workflow.id)}/change/"
    form = {"versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"}
    page = admin_client.post(url, {**form, "spec": json.dumps(broken)}).content.decode()
    assert "/edges/3/to: missing_node" in page
    preview = page.index("The spec you sent, drawn")
    sent = svg_in(page[preview:])
    missing = node_groups(sent)["publsh"]
    assert missing.get("class") == "af-node af-node-missing"
    assert "missing: no such node" in texts(sent, "af-node-type")
    saved = svg_in(page[page.index("Graph:") :])  # the saved version is still drawn as it is
    assert "publsh" not in node_groups(saved)
    fixed = {**example("draft-loop"), "description": "fixed"}
    assert admin_client.post(url, {**form, "spec": json.dumps(fixed)}).status_code == 302
