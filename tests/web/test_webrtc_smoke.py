"""The shared WebRTC layer (:mod:`peerdht.aio.web.webrtc`, aiortc) against Debian chromium's RTCPeerConnection.

Both directions of signalling (page offers / Python offers), binary and text messages, a malformed offer.
Runs inside the test network namespace (``tests/web/conftest.py``).
"""

from __future__ import annotations

import asyncio

import pytest
from tests.web.browser import chromium

from peerdht.aio.web.webrtc import DataChannelPeer, SignalError, check_signal

PAGE = """<!doctype html><script>
window.received = [];
function watch(pc) { return new Promise(r => { if (pc.iceGatheringState === 'complete') r();
  pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); }); }
function echo(dc) { dc.binaryType = 'arraybuffer';
  dc.onmessage = (m) => { window.received.push(typeof m.data === 'string' ? m.data : 'bin:' + m.data.byteLength);
                          dc.send(m.data); }; }
window.answer = async (offer) => {
  const pc = new RTCPeerConnection({iceServers: []}); window.pc = pc;
  pc.ondatachannel = (e) => echo(e.channel);
  await pc.setRemoteDescription(offer); await pc.setLocalDescription(await pc.createAnswer()); await watch(pc);
  return {type: 'answer', sdp: pc.localDescription.sdp};
};
window.offer = async () => {
  const pc = new RTCPeerConnection({iceServers: []}); window.pc = pc;
  echo(pc.createDataChannel('x'));
  await pc.setLocalDescription(await pc.createOffer()); await watch(pc);
  return {type: 'offer', sdp: pc.localDescription.sdp};
};
window.finish = async (answer) => { await window.pc.setRemoteDescription(answer); };
</script>"""


async def _echo_round(peer: DataChannelPeer, got: asyncio.Queue[bytes | str]) -> None:
    await peer.wait_open(20)
    peer.send(b"\x00\x01" * 5000)
    peer.send("text message")
    assert await asyncio.wait_for(got.get(), 20) == b"\x00\x01" * 5000
    assert await asyncio.wait_for(got.get(), 20) == "text message"


@pytest.mark.parametrize("mdns", [False, True])
async def test_python_offers_page_answers(mdns: bool) -> None:
    async with chromium(mdns=mdns) as browser:
        page = await browser.new_page()
        await page.goto("about:blank")
        await page.set_content(PAGE)
        got: asyncio.Queue[bytes | str] = asyncio.Queue()
        peer = DataChannelPeer(on_message=got.put_nowait)
        answer = await page.evaluate("o => window.answer(o)", await peer.create_offer())
        await peer.accept_answer(answer)
        await _echo_round(peer, got)
        assert peer.remote_address() is not None
        await peer.close()


async def test_page_offers_python_answers() -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await page.set_content(PAGE)
        got: asyncio.Queue[bytes | str] = asyncio.Queue()
        closed = asyncio.Event()
        peer = DataChannelPeer(on_message=got.put_nowait, on_close=closed.set)
        offer = await page.evaluate("() => window.offer()")
        await page.evaluate("a => window.finish(a)", await peer.accept_offer(offer))
        await _echo_round(peer, got)
        assert await page.evaluate("() => window.received") == ["bin:10000", "text message"]
        await page.evaluate("() => window.pc.close()")
        await asyncio.wait_for(closed.wait(), 40)


async def test_bad_offers_are_refused() -> None:
    peer = DataChannelPeer()
    for bad in (None, [], {"type": "answer", "sdp": "v=0"}, {"type": "offer"}, {"type": "offer", "sdp": "v=0" + "x" * 20000},
                {b"type": b"offer", b"sdp": b"\xff\xfe"}):
        with pytest.raises(SignalError):
            await peer.accept_offer(bad)
    with pytest.raises(SignalError):
        await DataChannelPeer().accept_offer({"type": "offer", "sdp": "v=0\r\nthis is not sdp\r\n"})
    assert check_signal({b"type": b"offer", b"sdp": b"v=0\r\n"}, "offer") == {"type": "offer", "sdp": "v=0\r\n"}
    await peer.close()
