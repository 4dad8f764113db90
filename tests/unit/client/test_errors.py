"""The API's error body becomes the server's own exception class, with what the body carried."""

from __future__ import annotations

import gc
import pickle

import pytest

from mailport import errors
from mailport.client import AsyncClient, Client, Secret, models
from mailport.client.errors import error_from_response
from mailport.client.transport import segment


def test_a_known_code_is_its_own_class():
    exc = error_from_response(
        404,
        {"error": "folder_not_found", "detail": "no folder 'X'", "hint": "Use a path as listed."},
    )
    assert type(exc) is errors.FolderNotFoundError
    assert isinstance(exc, errors.NotFoundError)
    assert exc.status == 404  # type: ignore[attr-defined]
    assert (exc.code, exc.message, exc.hint) == ("folder_not_found", "no folder 'X'", "Use a path as listed.")


def test_an_unknown_code_is_the_nearest_base_for_its_status_and_keeps_the_code():
    body = {"error": "unknown_field", "detail": "unknown field 'x'", "hint": "h", "field": "x"}
    exc = error_from_response(422, body)
    assert type(exc) is errors.InputError
    assert exc.code == "unknown_field" and exc.field == "x"  # type: ignore[attr-defined]
    assert exc.details["field"] == "x"
    bare = error_from_response(400, {"error": "bad_request", "detail": "d", "hint": "h"})
    assert type(bare) is errors.InputError and bare.http_status == 400  # the answer's, not the class's
    newer = error_from_response(409, {"error": "something_new", "detail": "d", "hint": "h"})
    assert type(newer) is errors.ConflictError and newer.code == "something_new"
    assert isinstance(error_from_response(599, None), errors.ProviderError)


def test_retry_after_and_server_said_are_carried():
    exc = error_from_response(
        503, {"error": "mailbox_busy", "detail": "busy", "hint": "h", "server_said": "* BYE"}, retry_after="7"
    )
    assert type(exc) is errors.MailboxBusyError
    assert exc.retry_after == 7.0 and exc.server_said == "* BYE"  # type: ignore[attr-defined]
    assert exc.details["retry_after"] == 7.0 and exc.http_status == 503


def test_a_class_with_its_own_initializer_is_still_raised():
    exc = error_from_response(502, {"error": "smtp_rejected", "detail": "550 no", "hint": "h"})
    assert type(exc) is errors.SMTPRejectedError


def test_the_credential_and_write_only_fields_never_show():
    clients = (
        AsyncClient("http://127.0.0.1:1", "mp_live_supersecret"),
        Client("http://127.0.0.1:1", Secret("mp_live_supersecret")),
    )
    for client in clients:
        assert "supersecret" not in repr(client) and "supersecret" not in repr(client._transport.options)
    clients[1].close()
    body = models.MailboxCreate(email="a@example.com", auth_method="password", password="hunter2hunter2")
    assert "hunter2" not in repr(body)
    assert '"password":"hunter2hunter2"' in body.model_dump_json(exclude_unset=True)  # sent on the wire
    with pytest.raises(TypeError):
        pickle.dumps(Secret("x"))


def test_path_parameters_cannot_climb_out_of_their_segment():
    assert segment("..") == "%2E%2E"
    assert segment("a/../b") == "a/%2E%2E/b"
    assert segment("Archive/2024") == "Archive/2024"
    assert segment("a b?c#d") == "a%20b%3Fc%23d"


def test_the_sync_client_ends_its_event_loop_thread_on_closing():
    client = Client("http://127.0.0.1:1")
    thread = client._transport._thread
    assert thread.is_alive()
    client.close()
    client.close()  # twice is harmless
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        client.mailboxes.list()


def test_a_sync_client_dropped_without_closing_ends_its_thread():
    client = Client("http://127.0.0.1:1")
    thread = client._transport._thread
    del client
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()
