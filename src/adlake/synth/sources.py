"""Real recordings for the corpus: camera footage, human speech with its transcripts and recorded music,
taken from Debian packages at setup (`make media-sources`, `adlake media-sources`) and never committed.

What each package gives (all redistributable; each package's copyright file is kept beside its media):

- ``opencv-doc``: OpenCV's sample videos: a fixed camera over walking people (``vtest.avi``), a hand-held
  camera (``tree.avi``), products moved in front of a camera (``box.mp4``, ``cup.mp4``);
- ``asterisk-core-sounds-en-wav`` and ``asterisk-core-sounds-en``: 568 prompts spoken by one professional
  voice (8 kHz) and their transcripts;
- ``fretsonfire-songs-muldjord``: recorded songs, each with its separate backing tracks;
- ``sonic-pi-samples``: recorded sound effects and ambiences.

The layout under ``synth.sources_dir``: ``footage/``, ``speech/`` (WAVs and ``transcripts.json``),
``music/<song>/`` (OGG tracks), ``effects/`` (FLAC), ``licences/<package>``, and ``sources.json`` with each
package's version and each file's sha256.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from adlake.errors import AdlakeError


class SourcesError(AdlakeError):
    """The media sources are missing or could not be fetched."""


# package -> (pattern inside the package, folder under sources_dir); a pattern matches one path component
# per "*" and keeps the file name (a song keeps its folder: music/<song>/<track>.ogg)
PACKAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "opencv-doc": (
        ("usr/share/doc/opencv-doc/examples/data/vtest.avi", "footage"),
        ("usr/share/doc/opencv-doc/examples/data/tree.avi", "footage"),
        ("usr/share/doc/opencv-doc/opencv4/html/box.mp4.gz", "footage"),
        ("usr/share/doc/opencv-doc/opencv4/html/cup.mp4.gz", "footage"),
    ),
    "asterisk-core-sounds-en-wav": (("usr/share/asterisk/sounds/en_US_f_Allison/*.wav", "speech"),),
    "asterisk-core-sounds-en": (("usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz", "speech"),),
    "fretsonfire-songs-muldjord": (("usr/share/games/fretsonfire/data/songs/muldjord/*/*.ogg", "music"),),
    "sonic-pi-samples": (("usr/share/sonic-pi/samples/ambi_*.flac", "effects"),
                         ("usr/share/sonic-pi/samples/misc_*.flac", "effects")),
}
MANIFEST = "sources.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError as e:
        raise SourcesError(f"{cmd[0]} is not installed: media sources come from Debian packages") from e
    if res.returncode:
        raise SourcesError(f"{' '.join(cmd)} failed: {(res.stderr or res.stdout).strip()[-800:]}")
    return res.stdout


def _download(package: str, into: Path) -> Path:
    """The package's .deb (apt-get download: no install, no root needed once apt's lists exist)."""
    try:
        _run(["apt-get", "download", package], cwd=into)
    except SourcesError:  # no package lists yet on a fresh machine
        _run(["apt-get", "update", "-qq"])
        _run(["apt-get", "download", package], cwd=into)
    debs = sorted(into.glob(f"{package}_*.deb"))
    if not debs:
        raise SourcesError(f"apt-get download {package} gave no .deb")
    return debs[-1]


def _target(rel: str, pattern: str, folder: str) -> str:
    name = rel.rsplit("/", 1)[1].removesuffix(".gz")
    if folder == "music":  # music/<song>/<track>.ogg
        return f"{folder}/{rel.split('/')[-2]}/{name}"
    return f"{folder}/{name}"


def fetch(dest: Path, packages: dict[str, tuple[tuple[str, str], ...]] = PACKAGES) -> dict:
    """Fetch what is missing into ``dest``; a package already there (per ``sources.json``) is skipped. Each
    file is written under a temporary name and renamed, so an interrupted fetch leaves no partial file and
    its package is fetched again next time."""
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"packages": {}}
    for package, wanted in packages.items():
        if package in manifest["packages"]:
            continue
        with tempfile.TemporaryDirectory(prefix="adlake-sources-") as tmp:
            work = Path(tmp)
            deb = _download(package, work)
            version = deb.name.split("_")[1]
            _run(["dpkg-deb", "-x", str(deb), str(work / "root")])
            root = work / "root"
            files: dict[str, str] = {}
            matched: set[str] = set()
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                rel = path.relative_to(root).as_posix()
                for pattern, folder in wanted:
                    if fnmatch.fnmatchcase(rel, pattern) and rel.count("/") == pattern.count("/"):
                        matched.add(pattern)
                        target = dest / _target(rel, pattern, folder)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        part = target.with_name(target.name + ".part")
                        with (gzip.open(path) if rel.endswith(".gz") else path.open("rb")) as src, \
                                part.open("wb") as out:
                            shutil.copyfileobj(src, out)
                        part.replace(target)
                        files[target.relative_to(dest).as_posix()] = _sha256(target)
            if missing := [p for p, _ in wanted if p not in matched]:
                raise SourcesError(f"{package} {version}: nothing matched {missing}")
            licence = root / "usr/share/doc" / package / "copyright"
            if licence.exists():
                (dest / "licences").mkdir(exist_ok=True)
                shutil.copyfile(licence, dest / "licences" / package)
        manifest["packages"][package] = {"version": version, "files": files}
        part = manifest_path.with_name(MANIFEST + ".part")
        part.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        part.replace(manifest_path)
    return manifest


def default_sources_dir() -> Path:
    from adlake.config import get_settings

    return Path(get_settings().synth.sources_dir)


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str
    path: Path


@dataclass(frozen=True)
class Sources:
    root: Path
    footage: tuple[Path, ...]
    prompts: tuple[Prompt, ...]
    songs: dict[str, tuple[Path, ...]]
    effects: tuple[Path, ...]
    versions: dict[str, str]

    @classmethod
    def load(cls, root: Path) -> Sources:
        root = Path(root).expanduser()
        if not (root / MANIFEST).exists():
            raise SourcesError(f"no media sources under {root}: run `make media-sources` "
                               "(or `adlake media-sources`) first")
        packages = json.loads((root / MANIFEST).read_text())["packages"]
        if missing := sorted(set(PACKAGES) - set(packages)):
            raise SourcesError(f"media sources under {root} lack {missing}: run `make media-sources`")
        return cls(root=root, footage=tuple(sorted((root / "footage").iterdir())),
                   prompts=tuple(_prompts(root / "speech")),
                   songs={d.name: tuple(sorted(d.glob("*.ogg"))) for d in sorted((root / "music").iterdir())},
                   effects=tuple(sorted((root / "effects").glob("*.flac"))),
                   versions={k: v["version"] for k, v in sorted(packages.items())})


_SPOKEN = re.compile(r"^[A-Za-z][A-Za-z' ,.?!-]*$")
_INNER_END = re.compile(r"[.?!]\s+\S")  # a full stop inside the prompt: two sentences in one recording


def _prompts(folder: Path) -> list[Prompt]:
    """The prompts whose transcript is one sentence of plain English words: no bracketed sound descriptions, no
    key names, digits or symbols that a transcript spells one way and a listener hears another, and no second
    sentence (a recording's time is known, not where a sentence inside it ends)."""
    out = []
    for line in (folder / "core-sounds-en.txt").read_text("utf-8", "replace").splitlines():
        if line.startswith(";") or ":" not in line:
            continue
        name, text = (s.strip() for s in line.split(":", 1))
        wav = folder / f"{name}.wav"
        text = re.sub(r"\s+", " ", text)
        if "/" in name or not wav.exists() or not _SPOKEN.match(text) or len(text.split()) < 2 \
                or _INNER_END.search(text):
            continue
        out.append(Prompt(name, text, wav))
    return out
