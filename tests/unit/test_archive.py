import io
import os
import tarfile
import zipfile

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


@pytest.mark.parametrize("member, fragment", [
    (file_member("../evil.py"), "contains '..'"),
    (file_member("a/../../evil.py"), "contains '..'"),
    (file_member("/etc/evil"), "absolute path"),
    (link_member("link", "/etc/passwd"), "absolute path"),
    (link_member("link", "../../outside"), "outside the pipeline folder"),
    (link_member("hard", "../outside", hard=True), "outside the pipeline folder"),
])
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
