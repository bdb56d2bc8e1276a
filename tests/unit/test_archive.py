import io
import os
import tarfile
import tracemalloc
import zipfile
import zlib

import pytest

from rayline.domain.archive import PACKAGE_TOP, extract_archive, write_package_zip
from rayline.errors import InvalidInput, PayloadTooLarge
from rayline.sdk.packaging import pack_folder

LIMIT, MEMBERS = 10_000_000, 1000


def tar_with(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_member(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def link_member(name: str, target: str, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def test_a_packed_folder_round_trips(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "main.py").write_text("def f(): pass\n")
    (src / "pkg" / "util.py").write_text("X = 1\n")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "junk.pyc").write_bytes(b"0")
    os.symlink("main.py", src / "alias.py")
    dest = tmp_path / "dest"
    extract_archive(pack_folder(src), dest, LIMIT, MEMBERS)
    assert (dest / "main.py").read_text() == "def f(): pass\n"
    assert (dest / "pkg" / "util.py").exists()
    assert (dest / "alias.py").resolve() == (dest / "main.py").resolve()
    assert not (dest / "__pycache__").exists()


@pytest.mark.parametrize(
    "member, fragment",
    [
        (file_member("../evil.py"), "contains '..'"),
        (file_member("a/../../evil.py"), "contains '..'"),
        (file_member("/etc/evil"), "absolute path"),
        (link_member("link", "/etc/passwd"), "absolute path"),
        (link_member("link", "../../outside"), "outside the pipeline folder"),
        (link_member("hard", "../outside", hard=True), "outside the pipeline folder"),
    ],
)
def test_malicious_members_are_refused_and_nothing_is_written(tmp_path, member, fragment):
    dest = tmp_path / "dest"
    with pytest.raises(InvalidInput) as info:
        extract_archive(tar_with(file_member("main.py"), member), dest, LIMIT, MEMBERS)
    assert fragment in info.value.message
    assert not dest.exists() or not any(dest.iterdir())
    assert not (tmp_path / "evil.py").exists()


def test_devices_are_refused(tmp_path):
    info = tarfile.TarInfo("dev")
    info.type = tarfile.CHRTYPE
    with pytest.raises(InvalidInput, match="special file"):
        extract_archive(tar_with((info, None)), tmp_path, LIMIT, MEMBERS)


def test_size_and_member_limits(tmp_path):
    with pytest.raises(PayloadTooLarge, match="unpacks to more than"):
        extract_archive(tar_with(file_member("big", b"0" * 5000)), tmp_path, 4000, MEMBERS)
    with pytest.raises(PayloadTooLarge, match="more than 3 files"):
        extract_archive(tar_with(*(file_member(f"f{i}") for i in range(4))), tmp_path, LIMIT, 3)


def test_garbage_is_not_an_archive(tmp_path):
    with pytest.raises(InvalidInput, match="not a readable tar.gz"):
        extract_archive(b"this is not a tar", tmp_path, LIMIT, MEMBERS)


def test_the_sdk_refuses_links_leaving_the_folder(tmp_path):
    (tmp_path / "secret").write_text("s")
    src = tmp_path / "src"
    src.mkdir()
    os.symlink("../secret", src / "leak")
    with pytest.raises(ValueError, match="outside the pipeline folder"):
        pack_folder(src)
    os.remove(src / "leak")
    os.symlink(tmp_path / "secret", src / "absolute")
    with pytest.raises(ValueError, match="absolute target"):
        pack_folder(src)
    with pytest.raises(ValueError, match="existing folder"):
        pack_folder(tmp_path / "missing")


def test_package_zip_has_one_top_folder(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("x = 1\n")
    target = tmp_path / "out" / "p.zip"
    write_package_zip(tmp_path / "src", target)
    names = zipfile.ZipFile(target).namelist()
    assert names == [f"{PACKAGE_TOP}/", f"{PACKAGE_TOP}/main.py"]


def test_a_chain_of_links_leaving_the_folder_is_refused(tmp_path):
    # Each link looks inside on its own; followed together they end outside.
    archive = tar_with(link_member("d/l1", ".."), link_member("l2", "d/l1/.."), file_member("l2/escaped", b"x"))
    with pytest.raises(InvalidInput):
        extract_archive(archive, tmp_path / "dest", LIMIT, MEMBERS)
    assert not (tmp_path / "escaped").exists()


def test_a_package_is_named_by_its_content_alone(tmp_path):
    import hashlib
    import os
    import time

    from rayline.domain.archive import write_package_zip

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("def f():\n    return {}\n")
    write_package_zip(tmp_path / "src", tmp_path / "a.zip")
    later = time.time() + 3600
    os.utime(tmp_path / "src" / "main.py", (later, later))  # touched, not changed
    write_package_zip(tmp_path / "src", tmp_path / "b.zip")
    digest = [hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in ("a.zip", "b.zip")]
    assert digest[0] == digest[1]


# --- Hardening: links through links, CVE-2025-4517, header and decompression bombs -------------


def dir_member(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


def nested_dest(tmp_path):
    # Escapes one or two levels up land in tmp_path, where the test can see them.
    dest = tmp_path / "outer" / "inner" / "dest"
    dest.mkdir(parents=True)
    return dest


def assert_nothing_written(tmp_path, dest):
    assert not any(dest.iterdir())
    found = [os.path.join(d, n) for d, dirs, files in os.walk(tmp_path) for n in dirs + files]
    assert sorted(found) == sorted(str(p) for p in (tmp_path / "outer", dest.parent, dest))


def raw_header(name: str, kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info.tobuf(tarfile.USTAR_FORMAT)


def gzip_of(*pieces: tuple[bytes, int]) -> bytes:
    # A multi-member gzip: one small compressed chunk repeated unpacks to count * len(chunk) bytes,
    # so a bomb of hundreds of MiB is built in milliseconds and a few hundred KiB.
    return b"".join(zlib.compress(chunk, 9, wbits=31) * count for chunk, count in pieces)


def padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


END = b"\0" * tarfile.RECORDSIZE
MiB = 1024 * 1024


@pytest.mark.parametrize(
    "members",
    [
        [link_member("lnk", ".."), file_member("lnk/evil")],
        [dir_member("sub"), link_member("lnk", "sub"), file_member("lnk/evil")],  # even a link inside
        [link_member("lnk", "../.."), dir_member("lnk/d"), file_member("lnk/d/evil")],
        [link_member("a", "."), link_member("d", "a/.."), link_member("d/x", "../../.."), file_member("d/x/evil")],
        [file_member("sub/f"), link_member("lnk", "sub"), link_member("h", "lnk/f", hard=True)],
        [file_member("f"), link_member("s", "f"), link_member("h", "s", hard=True)],
    ],
    ids=["up-link", "inside-link", "dir-through-link", "dot-link", "hard-link-through-link", "hard-link-to-link"],
)
def test_nothing_is_written_through_a_link(tmp_path, members):
    dest = nested_dest(tmp_path)
    with pytest.raises(InvalidInput, match="link"):
        extract_archive(tar_with(*members), dest, LIMIT, MEMBERS)
    assert_nothing_written(tmp_path, dest)


@pytest.mark.parametrize(
    "members",
    [
        [link_member("a", "."), link_member("b", "a/..")],
        [dir_member("sub"), link_member("d", "sub/.."), link_member("e", "d/..")],
        [link_member("sub/up", ".."), link_member("x", "sub/up/sub/up/..")],
        # The first link looks inside when it is read; the second one makes it leave.
        [link_member("a", "x/y/../.."), link_member("x", ".")],
        [link_member("a", "b/c"), link_member("b", "a/..")],
    ],
    ids=["dot", "parent-of-folder", "up-twice", "changed-later", "loop-out"],
)
def test_chained_links_ending_outside_are_refused(tmp_path, members):
    dest = nested_dest(tmp_path)
    with pytest.raises(InvalidInput, match="outside the pipeline folder|more than 40 links"):
        extract_archive(tar_with(file_member("main.py"), *members), dest, LIMIT, MEMBERS)
    assert_nothing_written(tmp_path, dest)


def test_a_loop_of_links_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="more than 40 links"):
        extract_archive(tar_with(link_member("a", "b"), link_member("b", "a")), tmp_path / "dest", LIMIT, MEMBERS)


def cve_2025_4517_archive(dest, through_links: bool) -> bytes:
    """The public PoC: 16 nested folders with ~250-character names and a one-letter link to each,
    so ``a/b/.../p`` is short but stands for a path near PATH_MAX. A link past it makes
    ``os.path.realpath`` give up, the ``data`` filter accepts ``escape``, and ``escape/evil`` lands
    two levels above ``dest`` (checked against the old extraction on CPython 3.11.7)."""
    levels = 16
    comp = "d" * min(247, (4096 - len(str(dest)) - 64) // levels - 1)
    steps = "abcdefghijklmnop"
    members, path = [], ""
    for step in steps[:levels]:
        members += [dir_member(path + comp), link_member(path + step, comp)]
        path += comp + "/"
    if through_links:
        deep = "/".join(steps[:levels]) + "/" + "l" * 254
        up = levels
    else:  # the same chain named by the real folders: no member is inside a link
        levels -= 1
        deep = comp + "/" + (comp + "/") * (levels - 1) + "l" * 200
        up = levels
    members.append(link_member(deep, "../" * up))
    members.append(link_member("escape", "/".join(steps[:levels]) + "/" + deep.rsplit("/", 1)[1] + "/../.."))
    if through_links:  # else the link alone must be refused: whoever reads escape/... later would leave
        members.append(file_member("escape/evil", b"pwned"))
    return tar_with(*members)


@pytest.mark.parametrize(
    "through_links, fragment",
    [(True, "is inside 'a', a link"), (False, "outside the pipeline folder")],
    ids=["poc", "real-folder-names"],
)
def test_the_cve_2025_4517_realpath_overflow_is_refused(tmp_path, through_links, fragment):
    dest = nested_dest(tmp_path)
    with pytest.raises(InvalidInput, match=fragment):
        extract_archive(cve_2025_4517_archive(dest, through_links), dest, LIMIT, MEMBERS)
    assert_nothing_written(tmp_path, dest)


def refused_within(memory: int, error: type[Exception], archive: bytes, dest) -> str:
    """Extract ``archive``, expecting ``error``, and check the peak of Python's allocations."""
    tracemalloc.start()
    try:
        with pytest.raises(error) as info:
            extract_archive(archive, dest, LIMIT, MEMBERS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < memory, f"peak {peak} bytes"
    return info.value.message


def pax_header(size: int) -> bytes:
    """A PAX extended header of ``size`` bytes: one 'comment' record of 'x'."""
    record = f"{size} comment=".encode()
    return raw_header("././@PaxHeader", tarfile.XHDTYPE, size) + record + b"x" * (size - len(record) - 1) + b"\n"


def test_a_pax_header_bomb_is_refused_with_bounded_memory(tmp_path):
    size = 100 * MiB  # one record of 100 MiB, about 100 KiB compressed
    record = f"{size} comment=".encode()
    archive = gzip_of(
        (raw_header("././@PaxHeader", tarfile.XHDTYPE, size) + record, 1),
        (b"x" * MiB, 99),
        (b"x" * (MiB - len(record) - 1) + b"\n", 1),
        (raw_header("main.py", tarfile.REGTYPE, 1) + padded(b"x") + END, 1),
    )
    assert len(archive) < 512 * 1024
    assert "extended headers" in refused_within(16 * MiB, InvalidInput, archive, tmp_path)
    assert not any(tmp_path.iterdir())


def test_long_name_chains_and_sparse_maps_are_refused_with_bounded_memory(tmp_path):
    long_names = gzip_of(
        (b"".join(raw_header("././@LongLink", tarfile.GNUTYPE_LONGNAME, 4096) + b"a" * 4096 for _ in range(500)), 1),
        (END, 1),
    )
    with pytest.raises(InvalidInput, match="in a row"):
        extract_archive(long_names, tmp_path, LIMIT, MEMBERS)
    # GNU sparse 1.0: the map at the start of the data says how many numbers follow; tarfile keeps
    # reading them, one list item per two bytes, until there are that many.
    sparse = tarfile.TarInfo("f")
    sparse.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": "f",
        "GNU.sparse.realsize": "1",
    }
    sparse.size = 64 * MiB
    header = sparse.tobuf(tarfile.PAX_FORMAT)
    archive = gzip_of((header + b"99999999999\n", 1), (b"0\n" * (MiB // 2), 64), (END, 1))
    assert "sparse" in refused_within(16 * MiB, InvalidInput, archive, tmp_path)
    old_sparse = tarfile.TarInfo("s")
    old_sparse.type = tarfile.GNUTYPE_SPARSE
    with pytest.raises(InvalidInput, match="sparse"):
        extract_archive(tar_with((old_sparse, None)), tmp_path, LIMIT, MEMBERS)
    assert not any(tmp_path.iterdir())


def test_a_gzip_bomb_is_refused_as_it_streams(tmp_path):
    size = 600 * MiB
    archive = gzip_of((raw_header("model.bin", tarfile.REGTYPE, size), 1), (b"\0" * MiB, 600), (END, 1))
    assert len(archive) < 2 * MiB
    assert "unpacks to more than" in refused_within(16 * MiB, PayloadTooLarge, archive, tmp_path)
    assert not any(tmp_path.iterdir())


def test_headers_alone_cannot_make_the_stream_unbounded(tmp_path):
    # 90 one-byte files, each after a PAX header under the cap: only the cap on the stream stops this.
    archive = gzip_of(
        *((pax_header(60 * 1024) + raw_header(f"f{i}", tarfile.REGTYPE, 1) + padded(b"x"), 1) for i in range(90)),
        (END, 1),
    )
    with pytest.raises(PayloadTooLarge, match="unpacks to more than"):
        extract_archive(archive, tmp_path, 1_000_000, 100)
    assert not any(tmp_path.iterdir())


def test_links_count_their_target_against_the_unpacked_limit(tmp_path):
    big = file_member("big", b"0" * 3000)
    with pytest.raises(PayloadTooLarge, match="unpacks to more than"):
        extract_archive(
            tar_with(big, link_member("h1", "big", hard=True), link_member("h2", "big", hard=True)),
            tmp_path,
            8000,
            MEMBERS,
        )
    with pytest.raises(PayloadTooLarge, match="unpacks to more than"):
        extract_archive(tar_with(big, link_member("s1", "big"), link_member("s2", "s1")), tmp_path, 8000, MEMBERS)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("a/" + "n" * 256, "component longer than 255"),
        ("/".join(["d" * 200] * 21), "longer than 4096"),
    ],
)
def test_overlong_names_are_refused(tmp_path, name, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        extract_archive(tar_with(file_member(name)), tmp_path, LIMIT, MEMBERS)


def test_a_nul_in_a_name_is_refused(tmp_path):
    info, data = file_member("main.py")
    info.pax_headers = {"path": "evil\x00.py"}
    with pytest.raises(InvalidInput, match="null byte"):
        extract_archive(tar_with((info, data)), tmp_path, LIMIT, MEMBERS)


@pytest.mark.parametrize(
    "members",
    [
        [file_member("x/f"), link_member("x", ".")],
        [file_member("f"), file_member("f", b"other")],
        [file_member("f"), dir_member("f")],
        [file_member("f"), file_member("f/g")],
    ],
)
def test_a_member_cannot_replace_or_sit_inside_another(tmp_path, members):
    with pytest.raises(InvalidInput, match="appears twice|which is a file"):
        extract_archive(tar_with(*members), tmp_path, LIMIT, MEMBERS)
    assert not any(tmp_path.iterdir())


def test_internal_links_and_long_names_still_extract(tmp_path):
    long_name = "pkg/" + "m" * 150 + ".py"  # needs a PAX header
    tool = tarfile.TarInfo("bin/tool")
    tool.mode = 0o4775  # setuid and group-writable: only the executable bit is kept
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", pax_headers={"comment": "abc"}) as tar:  # a global header
        for info, data in [
            file_member("v1/model.bin", b"weights"),
            link_member("latest", "v1/model.bin"),
            file_member("src/mod.py", b"X = 1\n"),
            link_member("lib", "src"),
            link_member("src/alias", "../v1/model.bin"),
            link_member("chain", "lib/alias"),
            link_member("copy.bin", "v1/model.bin", hard=True),
            file_member(long_name, b"L"),
            (tool, b"#!/bin/sh\n"),
            dir_member("empty"),
        ]:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    dest = tmp_path / "dest"
    extract_archive(buffer.getvalue(), dest, LIMIT, MEMBERS)
    assert os.readlink(dest / "latest") == "v1/model.bin"
    assert (dest / "latest").read_bytes() == (dest / "chain").read_bytes() == b"weights"
    assert (dest / "lib" / "mod.py").read_text() == "X = 1\n"
    assert (dest / "copy.bin").read_bytes() == b"weights" and not (dest / "copy.bin").is_symlink()
    assert (dest / long_name).read_bytes() == b"L"
    assert (dest / "bin" / "tool").stat().st_mode & 0o7777 == 0o755
    assert (dest / "v1" / "model.bin").stat().st_mode & 0o7777 == 0o644
    assert (dest / "empty").is_dir()


def test_a_packed_folder_with_a_folder_link_round_trips(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "util.py").write_text("X = 1\n")
    os.symlink("pkg", src / "lib")
    dest = tmp_path / "dest"
    extract_archive(pack_folder(src), dest, LIMIT, MEMBERS)
    assert (dest / "lib" / "util.py").read_text() == "X = 1\n"
    assert os.readlink(dest / "lib") == "pkg"


def test_the_destination_must_be_empty(tmp_path):
    (tmp_path / "old").write_text("x")
    with pytest.raises(ValueError, match="empty folder"):
        extract_archive(tar_with(file_member("main.py")), tmp_path, LIMIT, MEMBERS)


def test_many_long_links_are_refused_before_they_cost_minutes(tmp_path):
    # Each link names 300 path parts: 400 of them would have the resolver follow 120,000 names.
    members = [file_member("d/f.txt")] + [link_member(f"l{i}", "./" * 300 + "d") for i in range(400)]
    with pytest.raises(InvalidInput, match="too long to follow"):
        extract_archive(tar_with(*members), tmp_path / "out", 10**9, 20_000)
    assert not any((tmp_path / "out").iterdir())
