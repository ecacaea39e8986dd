"""Published networks by URL: downloaded once into a cache, as the reference tools do.

``fetch_network(url_or_path)`` returns a local path as it is. An ``http(s)://`` URL is downloaded
into the download cache (``$GANFORGE_CACHE``, else ``~/.cache/ganforge/downloads``) under its
file name, and that path is returned; a later call finds it there and downloads nothing.

The bytes go to ``NAME.part`` first and are renamed to ``NAME`` only when complete (and, where a
SHA-256 is known, verified), so a broken download never leaves a file that looks finished. A
connection that drops mid-way is resumed with an HTTP ``Range`` request (a few times in one call,
and from a ``.part`` left by an earlier call); a server that ignores ``Range`` makes it start
over. Without a network (or with ``GANFORGE_OFFLINE`` set) the error is one line naming the URL
and the path to download it to by hand. Only the standard library is used (urllib).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from .._version import __version__
from ..errors import UserError

try:  # POSIX: one process downloads a given file at a time
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None

log = logging.getLogger("ganforge")

CACHE_ENV = "GANFORGE_CACHE"
TIMEOUT = 30  # seconds without an answer before a request gives up
ATTEMPTS = 3  # transfers per call; each one after the first resumes where the last stopped
CHUNK = 1 << 20


class KnownNetwork(NamedTuple):
    """A published network: where it is, its SHA-256 where one is published, what it is."""

    url: str
    sha256: str | None
    note: str


_ADA = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"
_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/{}/versions/1/files/"
# Sources: the READMEs of NVlabs/stylegan2-ada-pytorch (its "pretrained" folder) and
# NVlabs/stylegan3 (the NGC catalogs "stylegan2" and "stylegan3"). Neither README (nor any other
# public source found) publishes a checksum, and this machine has no internet to take one, so
# every sha256 is None: these files are NOT verified here; only their URLs are from the sources.
_UNVERIFIED = "no published SHA-256, not verified here"
_ADA_NETS = {
    "ffhq.pkl": "FFHQ 1024x1024, trained with the original StyleGAN2",
    "metfaces.pkl": "MetFaces 1024x1024, transfer learning from FFHQ with ADA",
    "afhqcat.pkl": "AFHQ Cat 512x512, trained from scratch with ADA",
    "afhqdog.pkl": "AFHQ Dog 512x512, trained from scratch with ADA",
    "afhqwild.pkl": "AFHQ Wild 512x512, trained from scratch with ADA",
    "cifar10.pkl": "class-conditional CIFAR-10 32x32",
    "brecahad.pkl": "BreCaHAD 512x512, trained from scratch with ADA",
}
_SG3_RELEASE_SG2 = (
    "ffhq-1024x1024 ffhq-512x512 ffhq-256x256 ffhqu-1024x1024 ffhqu-256x256 metfaces-1024x1024 "
    "metfacesu-1024x1024 afhqv2-512x512 afhqcat-512x512 afhqdog-512x512 afhqwild-512x512 "
    "brecahad-512x512 cifar10-32x32 celebahq-256x256 lsundog-256x256"
).split()
_SG3_NETS = (
    "t-ffhq-1024x1024 t-ffhqu-1024x1024 t-ffhqu-256x256 r-ffhq-1024x1024 r-ffhqu-1024x1024 "
    "r-ffhqu-256x256 t-metfaces-1024x1024 t-metfacesu-1024x1024 r-metfaces-1024x1024 "
    "r-metfacesu-1024x1024 t-afhqv2-512x512 r-afhqv2-512x512"
).split()

#: file name -> (url, sha256 or None, note); ``ganforge import KIND URL`` names the KIND to use
KNOWN_NETWORKS: dict[str, KnownNetwork] = {
    **{
        name: KnownNetwork(_ADA + name, None, f"StyleGAN2-ADA: {what}; stylegan2; {_UNVERIFIED}")
        for name, what in _ADA_NETS.items()
    },
    **{
        f"stylegan2-{net}.pkl": KnownNetwork(
            _NGC.format("stylegan2") + f"stylegan2-{net}.pkl",
            None,
            f"StyleGAN2 of the StyleGAN3 release: {net}; stylegan2; {_UNVERIFIED}",
        )
        for net in _SG3_RELEASE_SG2
    },
    **{
        f"stylegan3-{net}.pkl": KnownNetwork(
            _NGC.format("stylegan3") + f"stylegan3-{net}.pkl",
            None,
            f"StyleGAN3-{net[0].upper()}: {net[2:]}; stylegan3; {_UNVERIFIED}",
        )
        for net in _SG3_NETS
    },
}


def cache_dir() -> Path:
    """The download cache: ``$GANFORGE_CACHE``, else ``~/.cache/ganforge/downloads``."""
    folder = os.environ.get(CACHE_ENV)
    if folder:
        return Path(folder).expanduser()
    return Path.home() / ".cache" / "ganforge" / "downloads"


def is_url(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` is a URL (``scheme://...``) rather than a file path."""
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", os.fspath(text)) is not None


def fetch_network(url_or_path: str | os.PathLike[str], *, sha256: str | None = None) -> Path:
    """A local path as it is; an http(s) URL as the path of its download in the cache.

    ``sha256`` (else `KNOWN_NETWORKS`' entry for exactly this URL, when it has one) is checked
    before the file is renamed into place; a mismatch deletes the download. Raises `UserError`
    (one line) when it cannot download: offline, an HTTP error, a checksum mismatch, a transfer
    that keeps breaking off (its ``.part`` is kept for the next call to resume).
    """
    text = os.fspath(url_or_path)
    if not is_url(text):
        return Path(url_or_path)
    if urlsplit(text).scheme.lower() not in ("http", "https"):
        raise UserError(f"cannot fetch {text}: only http:// and https:// URLs are downloaded")
    name = unquote(urlsplit(text).path.rsplit("/", 1)[-1])
    if not name or name in (".", "..") or "\\" in name:
        raise UserError(f"cannot download {text}: its path names no file; give the file's URL")
    target = cache_dir() / name
    known = KNOWN_NETWORKS.get(name)
    expected = sha256 or (known.sha256 if known and known.url == text else None)
    if target.is_file():
        _check_source(target, text)
        return target
    if os.environ.get("GANFORGE_OFFLINE", "") not in ("", "0"):
        raise _by_hand(text, target, "GANFORGE_OFFLINE is set")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target):
            if not target.is_file():  # another process may have finished it meanwhile
                part = target.with_name(name + ".part")
                _download(text, part, target)
                _verify(part, expected, text, target)
                os.replace(part, target)
                target.with_name(f".{name}.url").write_text(text + "\n")
    except OSError as err:
        raise UserError(
            f"cannot write {target} ({err.strerror or err}); set {CACHE_ENV} to a writable "
            "folder, or download the file by hand and pass its path"
        ) from None
    return target


def _check_source(target: Path, url: str) -> None:
    """A cached file that came from another URL with the same file name is not this one."""
    record = target.with_name(f".{target.name}.url")
    source = record.read_text().strip() if record.is_file() else url
    if source != url:
        raise UserError(
            f"{target} in the download cache came from {source}, not {url}; remove it, or "
            f"set {CACHE_ENV} to another folder"
        )


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Holds ``.NAME.lock`` beside ``target`` (the kernel frees it if the process dies)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(target.with_name(f".{target.name}.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(f"waiting for another process that is downloading {target}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _by_hand(url: str, target: Path, reason: str) -> UserError:
    return UserError(
        f"cannot download {url} ({reason}); download it by hand to {target} and run the "
        "command again"
    )


def _reason(err: BaseException) -> str:
    cause = getattr(err, "reason", err)
    text = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
    return text[:1].lower() + text[1:]


class _Broken(Exception):
    """The transfer stopped before the end; the bytes so far are in the .part file."""


def _download(url: str, part: Path, target: Path) -> None:
    """Fill ``part`` with the whole file, resuming a transfer that breaks off."""
    for _ in range(ATTEMPTS):
        try:
            _transfer(url, part, target)
            return
        except _Broken as err:
            broken = err
    have = part.stat().st_size if part.exists() else 0
    raise UserError(
        f"the download of {url} broke off {ATTEMPTS} times ({broken}); {have} bytes are kept in "
        f"{part}: run the command again to resume, or download it by hand to {target}"
    )


def _open(url: str, have: int, target: Path) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"ganforge/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the .part is as long as the file, or longer
            raise
        raise _by_hand(url, target, f"HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _by_hand(url, target, _reason(err)) from None


def _transfer(url: str, part: Path, target: Path) -> None:
    """One request: resume ``part`` when the server honours Range, else start it over."""
    have = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, have, target)
    except urllib.error.HTTPError as err:  # 416: complete if it says the file is that long
        complete = (err.headers.get("Content-Range") or "").endswith(f"/{have}")
        if not complete:
            part.unlink()
            raise _Broken(f"the server refused to resume at byte {have}") from None
        return
    with response:
        if response.status == 206 and _range_start(response) != have:
            part.unlink(missing_ok=True)  # a range we did not ask for: start over
            raise _Broken(f"the server sent {response.headers.get('Content-Range')!r}")
        if have and response.status != 206:
            log.info(f"{url}: the server does not resume downloads; starting over")
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        done = have
        with open(part, "ab" if have else "wb") as out:
            progress = _Progress(url, target, done, total)
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    progress.update(done)
            except (OSError, http.client.HTTPException) as err:
                raise _Broken(f"{_reason(err)} at byte {done}") from None
    if total is not None and done < total:
        raise _Broken(f"the connection closed at byte {done} of {total}")


def _range_start(response: http.client.HTTPResponse) -> int | None:
    """Where a 206 answer's bytes start (``Content-Range: bytes START-END/TOTAL``)."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range") or "")
    return int(match[1]) if match else None


class _Progress:
    """A line on the ``ganforge`` logger at the start and at every tenth of the file."""

    def __init__(self, url: str, target: Path, done: int, total: int | None) -> None:
        self.url, self.total, self.step = url, total, (total or 0) // 10 or 64 * CHUNK
        self.next = (done // self.step + 1) * self.step
        size = f" ({total / 1e6:.1f} MB)" if total else ""
        resume = f", resuming at {done / 1e6:.1f} MB" if done else ""
        log.info(f"downloading {url}{size} to {target}{resume}")

    def update(self, done: int) -> None:
        if done >= self.next and done != self.total:
            share = f" ({100 * done // self.total}%)" if self.total else ""
            log.info(f"  {done / 1e6:.1f} MB{share} of {self.url.rsplit('/', 1)[-1]}")
            self.next = (done // self.step + 1) * self.step


def _verify(part: Path, expected: str | None, url: str, target: Path) -> None:
    if expected is None:
        log.debug(f"{url}: no SHA-256 known, the download is not verified")
        return
    digest = hashlib.sha256()
    with open(part, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    if digest.hexdigest() != expected.lower():
        part.unlink()
        raise UserError(
            f"the download of {url} has SHA-256 {digest.hexdigest()}, expected {expected}; it "
            f"was deleted: run the command again, or download it by hand to {target}"
        )
