"""Personal data: encrypted per person, masked for integrators, erasable without breaking the chain."""

from __future__ import annotations

import pytest

from domain.errors import NotFound, ValidationFailed
from engine import privacy
from engine.audit.checkpoints import checkpoint
from engine.audit.verify import verify_case, verify_log
from engine.views import event_view
from tests.audit_support import RawStore
from tests.support import ZHANG_SAN, act, report

ZHANG = ZHANG_SAN
LI = {"name": "李四", "role": "respondent", "phone": "139 0000 5678"}


@pytest.fixture(autouse=True)
def signing_key(tmp_path, monkeypatch):
    monkeypatch.setenv("FENGQIAO_SIGNING_KEY", str(tmp_path / "signing-key.pem"))


def reported_parties(app, case_id):
    return app.history(case_id)[0].event.parties


def test_personal_fields_are_stored_encrypted_and_read_back_in_clear(app):
    case_id = report(app, parties=[ZHANG, LI]).case_id
    raw = RawStore(app)
    try:
        stored = b"".join(bytes(row[4]) for row in raw.events_rows())
    finally:
        raw.close()
    for secret in ("张三", "13812341234", "41092819800101127X", "李四"):
        assert secret.encode() not in stored
    assert b"enc:v1:" in stored
    parties = reported_parties(app, case_id)
    assert [{k: p[k] for k in ZHANG if k in p} for p in parties] == [ZHANG, {**LI}]
    assert all(p["person"].startswith("p-") for p in parties)


def test_the_same_person_keeps_one_id_a_bare_name_does_not(app):
    first = reported_parties(app, report(app, parties=[ZHANG, {"name": "王五"}]).case_id)
    second = reported_parties(
        app,
        report(
            app, parties=[{**ZHANG, "id_number": "41092819800101127x"}, {"name": "王五"}]
        ).case_id,
    )
    assert first[0]["person"] == second[0]["person"]
    assert first[1]["person"] != second[1]["person"]
    assert privacy.find_person(app, id_number="41092819800101127X") == first[0]["person"]
    li_first = reported_parties(app, report(app, parties=[LI]).case_id)[0]["person"]
    li_again = reported_parties(app, report(app, parties=[{**LI, "phone": "13900005678"}]).case_id)[
        0
    ]["person"]
    assert li_first == li_again == privacy.find_person(app, name="李四", phone="139-0000-5678")


def test_integrators_see_masked_fields():
    parties = [{"person": "p-1", **ZHANG}]
    assert privacy.reveal(parties, "integrator") == [
        {
            "person": "p-1",
            "name": "张*",
            "role": "applicant",
            "phone": "138****1234",
            "id_number": "410928********127X",
        }
    ]
    assert privacy.reveal(parties, "auditor") == parties


def test_erasure_shreds_the_key_history_replays_and_the_chain_still_verifies(app):
    case_id = report(app, parties=[ZHANG, LI]).case_id
    act(app, case_id, "comment", "wang", text="当事人已到场")
    other = report(app, parties=[ZHANG]).case_id
    signed = checkpoint(app)
    person = privacy.find_person(app, id_number=ZHANG["id_number"])

    erasure = privacy.erase(app, person, "cli:admin")

    assert erasure.person_id == person and not erasure.already
    for cid in (case_id, other):
        first = reported_parties(app, cid)[0]
        assert (first["name"], first["phone"], first["id_number"]) == (privacy.ERASED,) * 3
        assert first["role"] == "applicant"
        assert verify_case(app, cid).ok
    assert reported_parties(app, case_id)[1]["name"] == "李四"  # others untouched
    assert app.case(case_id).version == 2  # the case still replays
    assert (
        event_view(1, app.history(case_id)[0].event)["data"]["parties"][0]["name"] == privacy.ERASED
    )
    assert privacy.reveal(reported_parties(app, case_id), "integrator")[0]["name"] == privacy.ERASED
    result = verify_log(app)
    assert result.ok and result.checkpoints_checked == 1 and result.entries >= signed.size
    with pytest.raises(NotFound):  # the identity lookup is gone too
        privacy.find_person(app, id_number=ZHANG["id_number"])
    assert privacy.erase(app, person, "cli:admin").already
    # the same person reported again gets a new id and a new key
    again = reported_parties(app, report(app, parties=[ZHANG]).case_id)[0]
    assert again["person"] != person and again["name"] == "张三"


def test_erasing_an_unknown_person_is_a_clear_error(app):
    with pytest.raises(NotFound) as error:
        privacy.erase(app, "p-nobody", "cli:admin")
    assert error.value.code == "not_found"
    with pytest.raises(ValidationFailed):
        privacy.find_person(app, name="张三")


def test_erased_key_bytes_are_gone_from_the_table(app):
    report(app, parties=[ZHANG])
    person = privacy.find_person(app, id_number=ZHANG["id_number"])
    privacy.erase(app, person, "cli:admin")
    raw = RawStore(app)
    try:
        rows = raw.sql(
            f"SELECT key_bytes, lookup FROM {raw.events.rsplit('.', 1)[0] + '.' if raw.postgres else ''}"
            "person_keys WHERE person_id = ?",
            (person,),
        )
    finally:
        raw.close()
    assert rows == [(None, None)]


def test_a_party_seen_before_is_read_in_one_statement_and_writes_nothing(app, monkeypatch):
    """protect() asks of a known party, in one statement, what it asked in three (the person,
    their phone's lookup, their numbers' index): a report of one costs one round trip; a new
    person's report two reads fewer than before (it was three reads and the writes)."""
    from engine.sql import StoreDb

    sent: list[str] = []
    query, execute = StoreDb.query, StoreDb.execute

    def counted_query(self, sql, params=()):
        sent.append("read")
        return query(self, sql, params)

    def counted_execute(self, sql, params=()):
        sent.append("write")
        return execute(self, sql, params)

    monkeypatch.setattr(StoreDb, "query", counted_query)
    monkeypatch.setattr(StoreDb, "execute", counted_execute)
    first = privacy.protect(app, [dict(ZHANG)])[0]
    assert sent == ["read", "write", "read", "write", "write", "write"]  # the person, the
    # racing writer's check, the phone's copy, the two numbers' hashes
    sent.clear()
    again = privacy.protect(app, [dict(ZHANG)])[0]
    assert sent == ["read"]
    assert again.person == first.person
    digests = privacy.party_digests(app, ZHANG)
    assert privacy.persons_with_number(app, ZHANG["phone"]) == [first.person]
    assert len(digests) == 2
    sent.clear()  # a new number of a known person is indexed; a phone someone else has is not
    privacy.protect(app, [{**ZHANG, "phone": LI["phone"]}])
    assert sent.count("write") == 2  # the phone's copy and the number's hash
    assert privacy.persons_with_number(app, LI["phone"]) == [first.person]
