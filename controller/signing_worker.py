"""Signs commands in a child process, so that Ed25519 runs beside the event loop instead of on it.

At ~60 µs a signature, signing a 100,000-device operation on the event loop took 12% of the controller's time,
and a thread would not help: the library releases the GIL for each signature, but taking it back waits for the
busy loop's switch interval every time. The child is this module run as a program. It reads the raw private key
first, then requests, each a count and that many length-prefixed texts, and answers each with the texts'
signatures, 64 bytes each, in order, made by `Signer.signature` as the in-process signer makes them.

Signing is PyNaCl's (libsodium): 17.9 µs a signature here against cryptography's 28.6 µs, 1.1 CPU-seconds less
per 100,000 commands on a machine whose two cores the whole fleet shares.
"""

import asyncio
import logging
import struct
import sys
from typing import BinaryIO

from nacl.signing import SigningKey

from shared.signing import Signer

log = logging.getLogger(__name__)

_COUNT = struct.Struct(">I")
SIGNATURE_BYTES = 64
PRIVATE_KEY_BYTES = 32


class SigningFailed(RuntimeError):
    """The worker could not be started, or died twice in a row."""


class SigningWorker:
    """One child process; requests go to it one at a time, in the order they are made."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._process: asyncio.subprocess.Process | None = None
        self._turn = asyncio.Lock()

    async def sign(self, texts: list[bytes]) -> list[bytes]:
        """Each canonical text as a payload with its signature attached (what `Signer.signed` makes in-process)."""
        if not texts:
            return []
        async with self._turn:
            try:
                signatures = await self._request(texts)
            except (OSError, asyncio.IncompleteReadError) as err:
                log.warning("the signing worker failed (%s); starting another", err)
                await self._stop()
                try:
                    signatures = await self._request(texts)
                except (OSError, asyncio.IncompleteReadError) as again:
                    await self._stop()
                    raise SigningFailed(f"the signing worker failed twice: {again}") from again
        return [self._signer.attach(text, signature) for text, signature in zip(texts, signatures, strict=True)]

    async def start(self) -> None:
        """Start the child now rather than with the first batch, which would wait ~0.2 s for it."""
        async with self._turn:
            if self._process is None:
                try:
                    await self._start()
                except OSError as err:
                    raise SigningFailed(f"cannot start the signing worker: {err}") from err

    async def close(self) -> None:
        async with self._turn:
            await self._stop()

    async def _request(self, texts: list[bytes]) -> list[bytes]:
        process = self._process or await self._start()
        assert process.stdin is not None  # both pipes exist: _start asks for them
        assert process.stdout is not None
        frame = [_COUNT.pack(len(texts))]
        for text in texts:
            frame += (_COUNT.pack(len(text)), text)
        process.stdin.write(b"".join(frame))
        await process.stdin.drain()
        answer = await process.stdout.readexactly(SIGNATURE_BYTES * len(texts))
        return [answer[at : at + SIGNATURE_BYTES] for at in range(0, len(answer), SIGNATURE_BYTES)]

    async def _start(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdin is not None
        process.stdin.write(self._signer.private_bytes())  # over the pipe: never in argv or the environment
        self._process = process
        return process

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.kill()
        await process.wait()


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The child's loop: until its input ends, sign what each request holds."""
    signer = Signer(SigningKey(_read(requests, PRIVATE_KEY_BYTES)))
    while header := requests.read(_COUNT.size):
        (count,) = _COUNT.unpack(_complete(header, requests, _COUNT.size))
        signatures = []
        for _ in range(count):
            (length,) = _COUNT.unpack(_read(requests, _COUNT.size))
            signatures.append(signer.signature(_read(requests, length)))
        answers.write(b"".join(signatures))
        answers.flush()


def _read(stream: BinaryIO, size: int) -> bytes:
    return _complete(b"", stream, size)


def _complete(start: bytes, stream: BinaryIO, size: int) -> bytes:
    data = start
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            raise EOFError(f"input ended {size - len(data)} byte(s) into a request")
        data += more
    return data


if __name__ == "__main__":
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        sys.exit(0)
