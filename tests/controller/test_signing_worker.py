"""The signing worker: a real child process signs what the dispatcher would, exactly as the in-process signer does."""

import asyncio
import io
import json
import struct

import pytest
from nacl.signing import SigningKey

from controller.signing_worker import SigningFailed, SigningWorker, serve
from shared.signing import Signer, Verifier, canonical

KEY = SigningKey.generate()


def bodies(count: int) -> list[bytes]:
    return [canonical({"command_id": f"c-{n}", "device_id": f"d-{n}", "note": "héllo ✓" * n}) for n in range(count)]


def test_payloads_from_the_worker_equal_the_in_process_signer_and_verify() -> None:
    signer = Signer(KEY)
    texts = bodies(700)

    async def sign() -> list[bytes]:
        worker = SigningWorker(signer)
        try:
            first = await worker.sign(texts[:200])
            rest = await asyncio.gather(worker.sign(texts[200:450]), worker.sign(texts[450:]))
            return first + rest[0] + rest[1]
        finally:
            await worker.close()

    payloads = asyncio.run(sign())

    # Ed25519 is deterministic: the same key and text give the same signature, in or out of process.
    assert payloads == [signer.signed(json.loads(text)) for text in texts]
    verifier = Verifier([KEY.verify_key])
    for payload in payloads:
        verifier.verify(json.loads(payload))


def test_a_worker_that_died_is_replaced_and_the_batch_still_signed() -> None:
    signer = Signer(KEY)

    async def sign_across_a_death() -> list[bytes]:
        worker = SigningWorker(signer)
        try:
            await worker.sign(bodies(3))
            assert worker._process is not None
            worker._process.kill()
            await worker._process.wait()
            return await worker.sign(bodies(5))
        finally:
            await worker.close()

    assert asyncio.run(sign_across_a_death()) == [signer.signed(json.loads(text)) for text in bodies(5)]


def test_a_worker_that_cannot_run_fails_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.signing_worker.sys.executable", "/bin/false")
    worker = SigningWorker(Signer(KEY))

    with pytest.raises(SigningFailed, match="failed twice"):
        asyncio.run(worker.sign(bodies(2)))


def test_nothing_to_sign_starts_no_worker_and_start_starts_one_ahead_of_the_first_batch() -> None:
    worker = SigningWorker(Signer(KEY))
    assert asyncio.run(worker.sign([])) == []
    assert worker._process is None

    async def started_early() -> None:
        await worker.start()
        assert worker._process is not None
        pid = worker._process.pid
        await worker.sign(bodies(1))
        assert worker._process.pid == pid  # the same child signs
        await worker.close()

    asyncio.run(started_early())
    assert worker._process is None


def test_a_worker_that_cannot_start_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.signing_worker.sys.executable", "/no/such/python")
    with pytest.raises(SigningFailed, match="cannot start the signing worker"):
        asyncio.run(SigningWorker(Signer(KEY)).start())


def test_the_child_loop_signs_each_request_and_refuses_a_truncated_one() -> None:
    signer = Signer(KEY)
    texts = bodies(2)
    request = struct.pack(">I", len(texts)) + b"".join(struct.pack(">I", len(t)) + t for t in texts)
    answers = io.BytesIO()

    serve(io.BytesIO(signer.private_bytes() + request), answers)
    with pytest.raises(EOFError, match="into a request"):
        serve(io.BytesIO(signer.private_bytes() + request[:-3]), io.BytesIO())

    signatures = answers.getvalue()
    assert len(signatures) == 128
    assert [signer.attach(t, signatures[i * 64 : (i + 1) * 64]) for i, t in enumerate(texts)] == [
        signer.signed(json.loads(t)) for t in texts
    ]
