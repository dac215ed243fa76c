"""Scorecards from the portal's own data: each shipped check with data that passes and
data that fails, what is unknown without data, levels, history across runs, the catalog
filter, a custom check added by YAML (file and admin API), and bad YAML refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog.entity_reads import EntityReads
from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.scaffolder.upgrade_tables import TemplateVersion
from portal_backend.scorecards import service
from portal_backend.settings import Settings
from portal_backend.sla import costs, evaluations
from portal_backend.sla.tables import Alert
from tests.conftest import LiveServer
from tests.sla.conftest import T0, push, rag_service, records, register

TEMPLATE = "template:default/rag-service"
TEAM = {
    "apiVersion": "backstage.io/v1alpha1",
    "kind": "Group",
    "metadata": {"name": "team-a"},
    "spec": {"type": "team", "children": []},
}
SHIPPED = [
    "owner-exists", "within-budget", "no-firing-alerts", "slo-met-7d", "template-current",
    "retrieval-hit-rate", "refusal-calibrated", "low-hallucination",
]  # fmt: skip


def _service(name: str, *, owner: str, budget: str, version: str | None) -> dict[str, Any]:
    entity = rag_service(name, owner=owner, budget=budget)
    if version:
        entity["metadata"]["annotations"].update(
            {"backstage.io/source-template": TEMPLATE, "rag-portal.io/template-version": version}
        )
    return entity


def _record_versions(factory: Any, *versions: str) -> None:
    with session_scope(factory) as session:
        for version in versions:
            session.add(
                TemplateVersion(
                    template_ref=TEMPLATE,
                    version=version,
                    digest=version * 8,
                    archive=b"",
                    size_bytes=0,
                    changelog={},
                    source="test",
                    recorded_at=T0,
                )  # fmt: skip
            )


def _evaluate(factory: Any, ref: str, **metrics: float) -> None:
    with session_scope(factory) as session:
        evaluations.record_evaluation(session, ref, metrics, T0 - timedelta(hours=1), "test")


def _spend(factory: Any, ref: str, usd: float) -> None:
    with session_scope(factory) as session:
        costs.add_cost(session, ref, (T0 - timedelta(hours=3)).timestamp(),
                       (T0 - timedelta(hours=2)).timestamp(), usd, 0)  # fmt: skip


def _fire(factory: Any, ref: str) -> None:
    with session_scope(factory) as session:
        session.add(
            Alert(fingerprint=f"{ref}-burn", alertname="SLOBurnRatePage", service_ref=ref,
                  severity="page", state="firing", starts_at=T0 - timedelta(minutes=5))
        )  # fmt: skip


@pytest.fixture
def fleet_data(session_factory: Any) -> dict[str, str]:
    """good-bot meets every shipped check, bad-bot fails every one, new-bot has no data."""
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities([TEAM])
    register(
        session_factory,
        _service("good-bot", owner="team-a", budget="1000", version="1.1.0"),
        _service("bad-bot", owner="team-gone", budget="100", version="1.0.0"),
        _service("new-bot", owner="team-a", budget="", version=None),
    )
    good, bad, new = (f"component:default/{n}-bot" for n in ("good", "bad", "new"))
    _record_versions(session_factory, "1.0.0", "1.1.0")
    week = T0 - timedelta(days=6)
    push(session_factory, records(good, week, 6 * 86400, 400), T0)
    push(session_factory, records(bad, week, 6 * 86400, 400, error_ratio=0.3), T0)
    _evaluate(session_factory, good, hit_at_k=0.95, refusal_recall=0.9, hallucination_rate=0.02)
    _evaluate(session_factory, bad, hit_at_k=0.5, refusal_recall=0.3, hallucination_rate=0.2)
    _spend(session_factory, good, 10.0)
    _spend(session_factory, bad, 150.0)
    _fire(session_factory, bad)
    return {"good": good, "bad": bad, "new": new}


def _states(card: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["state"] for c in card["checks"]}


def _why(card: dict[str, Any], check: str) -> str:
    return next(c["why"] for c in card["checks"] if c["id"] == check)


def test_each_shipped_check_passes_and_fails_on_the_portals_data(
    settings: Settings, session_factory: Any, fleet_data: dict[str, str]
) -> None:
    result = service.run(settings, session_factory, T0)
    with session_scope(session_factory) as session:
        good = service.current(session, fleet_data["good"])
        bad = service.current(session, fleet_data["bad"])
        new = service.current(session, fleet_data["new"])
    assert result["services"] == 3 and result["levels"] == {"gold": 1, "none": 2}, good
    assert _states(good) == dict.fromkeys(SHIPPED, "pass")
    assert good["level"] == "gold"
    assert _states(bad) == dict.fromkeys(SHIPPED, "fail")
    assert bad["level"] == "none"
    # The why says what was measured against what.
    assert "team-gone is not in the catalog" in _why(bad, "owner-exists")
    assert "150 %" in _why(bad, "within-budget") and "$150.00 spent" in _why(bad, "within-budget")
    assert "SLOBurnRatePage" in _why(bad, "no-firing-alerts")
    assert "0.95 (its target)" in _why(bad, "slo-met-7d")
    assert "on template:default/rag-service 1.0.0, latest 1.1.0" in _why(bad, "template-current")
    assert "eval.hit_at_k is 0.5, needs >= 0.9" in _why(bad, "retrieval-hit-rate")
    assert "eval.hallucination_rate is 0.2, needs <= 0.05" in _why(bad, "low-hallucination")
    assert "meets >= 0.8" in _why(good, "refusal-calibrated")
    # No data is unknown (not a pass), and says what to do.
    assert _states(new) == {
        "owner-exists": "pass", "within-budget": "unknown", "no-firing-alerts": "pass",
        "slo-met-7d": "unknown", "template-current": "unknown", "retrieval-hit-rate": "unknown",
        "refusal-calibrated": "unknown", "low-hallucination": "unknown",
    }  # fmt: skip
    assert "run Evaluate" in _why(new, "retrieval-hit-rate")
    assert new["level"] == "none"  # bronze needs a budget to be within


def test_level_is_written_to_the_entity_and_filters_the_catalog(
    settings: Settings, session_factory: Any, fleet_data: dict[str, str]
) -> None:
    service.run(settings, session_factory, T0)
    with session_scope(session_factory) as session:
        reads = EntityReads(session)
        gold = reads.query_entities(filters=["status.scorecard.level=gold"])
        none = reads.query_entities(filters=["kind=component,status.scorecard.level=none"])
        bad = CatalogService(session).get_by_ref(fleet_data["bad"])
    assert [e["metadata"]["name"] for e in gold["items"]] == ["good-bot"]
    assert sorted(e["metadata"]["name"] for e in none["items"]) == ["bad-bot", "new-bot"]
    assert bad is not None and bad["status"]["scorecard"]["failed"] == len(SHIPPED)


def test_history_across_two_runs_and_the_fleet_worst_first(
    settings: Settings, session_factory: Any, fleet_data: dict[str, str]
) -> None:
    service.run(settings, session_factory, T0)
    # bad-bot's evaluation improves and its alert resolves: the next run sees it.
    _evaluate(session_factory, fleet_data["bad"], hit_at_k=0.97, refusal_recall=0.9,
              hallucination_rate=0.01)  # fmt: skip
    with session_scope(session_factory) as session:
        for alert in session.query(Alert).all():
            alert.state = "resolved"
    service.run(settings, session_factory, T0 + timedelta(hours=1))
    with session_scope(session_factory) as session:
        history = service.history(session, fleet_data["bad"])
        fleet = service.fleet(session, settings)
        team = service.fleet(session, settings, owner="team-a")
    first, second = history["items"][1], history["items"][0]  # newest first
    assert first["states"]["retrieval-hit-rate"] == "fail"
    assert second["states"]["retrieval-hit-rate"] == "pass"
    assert first["states"]["no-firing-alerts"] == "fail"
    assert second["states"]["no-firing-alerts"] == "pass"
    assert second["failed"] < first["failed"]
    # Worst first: below bronze, most failing checks first; gold last.
    names = [i["entityRef"] for i in fleet["items"]]
    assert names == [fleet_data["bad"], fleet_data["new"], fleet_data["good"]]
    assert fleet["teams"][0]["owner"] == "group:default/team-gone"
    assert [i["entityRef"] for i in team["items"]] == [fleet_data["new"], fleet_data["good"]]


def test_a_custom_check_from_a_yaml_file(
    settings: Settings, session_factory: Any, fleet_data: dict[str, str], tmp_path: Path
) -> None:
    """A platform team's own checks and levels, no code: any evaluation metric, an entity
    field, a percent threshold on a ratio."""
    checks = tmp_path / "checks.yaml"
    checks.write_text(
        """
levels: [ready, excellent]
checks:
  - id: mrr-floor
    fact: eval.mrr
    operator: ">="
    threshold: 60 %
    level: excellent
  - id: in-production
    fact: entity.spec.lifecycle
    operator: "=="
    threshold: production
    level: ready
"""
    )
    custom = settings.model_copy(update={"scorecard_checks_file": checks})
    _evaluate(session_factory, fleet_data["good"], mrr=0.7)
    _evaluate(session_factory, fleet_data["bad"], mrr=0.4)
    service.run(custom, session_factory, T0)
    with session_scope(session_factory) as session:
        good = service.current(session, fleet_data["good"])
        bad = service.current(session, fleet_data["bad"])
    assert _states(good) == {"mrr-floor": "pass", "in-production": "pass"}
    assert good["level"] == "excellent"
    assert _states(bad) == {"mrr-floor": "fail", "in-production": "pass"}
    assert bad["level"] == "ready"
    assert "needs >= 0.6" in _why(bad, "mrr-floor")


def test_admins_replace_the_checks_through_the_api(
    live_server: LiveServer, admin_client: httpx.Client, make_token: Any,
    session_factory: Any, fleet_data: dict[str, str],
) -> None:  # fmt: skip
    shipped = admin_client.get("/api/scorecards/checks").json()
    assert [c["id"] for c in shipped["checks"]] == SHIPPED
    assert shipped["source"].endswith("default_checks.yaml")
    custom = "levels: [ok]\nchecks:\n  - id: has-evaluation\n    fact: eval.hit_at_k\n" \
             "    operator: '>'\n    threshold: 0\n"  # fmt: skip
    writer = make_token("write")
    refused = httpx.put(
        f"{live_server.url}/api/scorecards/checks", content=custom,
        headers={"Authorization": f"Bearer {writer}", "Content-Type": "application/yaml"},
    )  # fmt: skip
    assert refused.status_code == 403
    put = admin_client.put(
        "/api/scorecards/checks", content=custom, headers={"Content-Type": "application/yaml"}
    )
    assert put.status_code == 200, put.text
    assert put.json()["source"] == "admin"
    assert admin_client.get("/api/scorecards/checks").json()["checks"][0]["id"] == "has-evaluation"
    run = admin_client.post("/api/scorecards/run")
    assert run.status_code == 200 and run.json()["checks"] == "admin"
    card = admin_client.get("/api/scorecards/services/component/default/good-bot").json()
    assert card["level"] == "ok" and _states(card) == {"has-evaluation": "pass"}
    listed = admin_client.get("/api/scorecards/services", params={"level": "none"}).json()
    assert [i["entityRef"] for i in listed["items"]] == ["component:default/new-bot"]
    # Back to the file.
    assert admin_client.delete("/api/scorecards/checks").status_code == 204
    assert admin_client.get("/api/scorecards/checks").json()["source"] != "admin"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ("checks: []", "checks", "at least 1"),
        ("checks:\n  - {id: x, fact: eval, operator: '>=', threshold: 1}", "checks[0].fact",
         "unknown fact 'eval'"),
        ("checks:\n  - {id: x, fact: eval.mrr, operator: '>=', threshold: lots}",
         "checks[0].threshold", "use a number"),
        ("checks:\n  - {id: x, fact: eval.mrr, operator: '>=', threshold: target}",
         "checks[0].threshold", "no per-service target"),
        ("checks:\n  - {id: x, fact: owner.exists, level: platinum}", "checks[0].level",
         "not one of levels"),
        ("checks:\n  - {id: x, fact: eval.mrr, operator: '~', threshold: 1}",
         "checks[0].operator", ""),
        ("checks:\n  - {id: x, fact: eval.mrr}\n  - {id: x, fact: eval.mrr}", "checks[1].id",
         "used twice"),
        ("checks:\n  - {id: x, fact: eval.mrr, colour: red}", "checks[0].colour", ""),
        ("levels: [a\nchecks: [", "checks", "not valid YAML"),
    ],
)  # fmt: skip
def test_bad_checks_are_a_400_naming_the_field_and_change_nothing(
    admin_client: httpx.Client, body: str, field: str, words: str
) -> None:
    answer = admin_client.put(
        "/api/scorecards/checks", content=body, headers={"Content-Type": "application/yaml"}
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert field in [d["path"] for d in error.get("details", [])], error
    assert words in error["message"]
    assert admin_client.get("/api/scorecards/checks").json()["source"] != "admin"


def test_scorecard_of_an_unscored_service_is_a_404(admin_client: httpx.Client) -> None:
    answer = admin_client.get("/api/scorecards/services/component/default/nothing")
    assert answer.status_code == 404 and "no scorecard yet" in answer.json()["error"]["message"]


def test_scorecard_tab_fleet_page_and_catalog_facet(
    settings: Settings, session_factory: Any, fleet_data: dict[str, str],
    admin_client: httpx.Client,
) -> None:  # fmt: skip
    """The pages: a service's Scorecard tab (each check's state and why, by level, and
    its runs), the fleet and team page worst first, the catalog's scorecard filter."""
    before = admin_client.get("/catalog/default/component/bad-bot/scorecard")
    assert before.status_code == 200 and "No scorecard yet" in before.text
    service.run(settings, session_factory, T0)
    _evaluate(session_factory, fleet_data["bad"], hit_at_k=0.97, refusal_recall=0.9,
              hallucination_rate=0.01)  # fmt: skip
    service.run(settings, session_factory, T0 + timedelta(hours=1))

    tab = admin_client.get("/catalog/default/component/bad-bot/scorecard")
    assert tab.status_code == 200, tab.text
    assert 'href="/catalog/default/component/bad-bot/scorecard" aria-current="page"' in tab.text
    assert "below bronze" in tab.text
    assert "team-gone is not in the catalog" in tab.text
    assert "eval.hit_at_k is 0.97, meets &gt;= 0.9" in tab.text
    assert tab.text.index("<caption>Bronze</caption>") < tab.text.index("<caption>Gold</caption>")
    assert "Recent runs" in tab.text
    gold = admin_client.get("/catalog/default/component/good-bot/scorecard")
    assert 'id="scorecard-level">gold<' in gold.text

    fleet = admin_client.get("/scorecards")
    assert fleet.status_code == 200, fleet.text
    rows = fleet.text[fleet.text.index('id="services"') :]
    order = [
        rows.index(f"/catalog/default/component/{n}-bot/scorecard") for n in ("bad", "new", "good")
    ]
    assert order == sorted(order), "worst first: bad-bot, new-bot, good-bot"
    teams = fleet.text[fleet.text.index('id="teams"') : fleet.text.index('id="services"')]
    assert teams.index("team-gone") < teams.index("team-a")
    team = admin_client.get("/scorecards", params={"owner": "team-a"})
    assert "bad-bot" not in team.text and "good-bot" in team.text and "new-bot" in team.text
    only_gold = admin_client.get("/scorecards", params={"level": "gold"})
    assert "good-bot" in only_gold.text and "bad-bot" not in only_gold.text

    catalog = admin_client.get("/catalog", params={"kind": "component", "scorecard": "gold"})
    assert catalog.status_code == 200
    assert "good-bot" in catalog.text and "bad-bot" not in catalog.text
    assert "Scorecard level" in catalog.text
