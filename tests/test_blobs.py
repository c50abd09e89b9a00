"""Images are stored once by content and come back as the exact data URLs sent."""

from __future__ import annotations

import base64
import io
import json

import pytest
import sqlalchemy as sa
from PIL import Image

from contextkit.errors import ImageError
from contextkit.store.transfer import check


def data_url(color=(200, 10, 10)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_message(url: str) -> dict:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": url}},
        ],
    }


def test_same_image_stored_once_and_resolved(store):
    red, blue = data_url(), data_url((0, 0, 255))
    t = store.thread("b", model="deepseek-v4-flash")
    for url in (red, red, blue, red):
        t.append(image_message(url))
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM blobs")).scalar_one() == 2
        raw = conn.execute(sa.text("SELECT parts FROM messages WHERE seq = 1")).scalar_one()
    assert "blob:sha256:" in raw and "base64" not in raw  # rows stay small
    urls = [m.content[1].url for m in t.messages()]
    assert urls == [red, red, blue, red]
    out = t.build(max_tokens=10)
    assert out[0]["content"][1]["image_url"]["url"] == red
    assert check(store) == []


def test_missing_blob_is_reported(sqlite_store):
    t = sqlite_store.thread("b", model="deepseek-v4-flash")
    t.append(image_message(data_url()))
    with sqlite_store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM blobs"))
    problems = check(sqlite_store)
    assert len(problems) == 1 and "is missing" in problems[0]
    assert json.dumps(problems)


def _png_bytes() -> bytes:
    return base64.b64decode(data_url().split(",", 1)[1])


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("data:image/png;base64," + base64.b64encode(_png_bytes()[:60]).decode(), "truncated"),
        (
            "data:image/png;base64,"
            + base64.b64encode(_png_bytes()[:33] + b"\x00garbage" * 30).decode(),
            "corrupt",
        ),
        ("data:image/jpeg;base64," + base64.b64encode(_png_bytes()).decode(), "labelled"),
    ],
    ids=["truncated", "garbage-body", "mislabelled"],
)
def test_corrupt_image_is_refused_before_anything_is_written(store, url, said):
    t = store.thread("b", model="deepseek-v4-flash")
    t.append({"role": "user", "content": "hi"})
    with pytest.raises(ImageError, match=said):
        t.append(image_message(url))
    with pytest.raises(ImageError, match=said):
        t.extend([{"role": "assistant", "content": "ok"}, image_message(url)])
    with pytest.raises(ImageError, match=said):
        t.build(max_tokens=10, extra=image_message(url))
    assert [m.seq for m in t.messages()] == [1]
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM blobs")).scalar_one() == 0
    t.append(image_message(data_url()))  # a whole image still goes in
    assert check(store) == []


def test_jpg_alias_label_is_accepted(store):
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (1, 2, 3)).save(buf, "JPEG")
    url = "data:image/jpg;base64," + base64.b64encode(buf.getvalue()).decode()
    t = store.thread("b", model="deepseek-v4-flash")
    t.append(image_message(url))
    assert next(iter(t.messages())).content[1].url == url


def test_deleting_a_thread_collects_the_images_no_other_thread_shows(store):
    red, blue = data_url(), data_url((0, 0, 255))
    a = store.thread("a", model="deepseek-v4-flash")
    b = store.thread("b", model="deepseek-v4-flash")
    a.append(image_message(red))
    a.append(image_message(blue))
    b.append(image_message(red))  # shared with thread a

    def blobs() -> int:
        with store.engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM blobs")).scalar_one()

    assert blobs() == 2
    a.delete()
    assert blobs() == 1  # blue was only a's; red is still b's
    assert b.get(1).content[1].url == red and check(store) == []
    b.delete()
    assert blobs() == 0
