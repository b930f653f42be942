"""`inference-engine serve` starting and stopping (issue #29): a taken port fails at once,
before the model loads; a wrong model or Ctrl-C while loading ends with one line and a non-zero
exit; on SIGTERM, a stream still running after --shutdown-timeout ends with an error event and
[DONE] instead of a cut connection."""
import json
import signal
import socket
import threading

import httpx

from utils.server import SERVER_ARGS, ServerProcess, wait_until


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("ERROR")]


def test_a_taken_port_fails_at_once_before_loading(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(SERVER_ARGS, str(tmp_path / "log"), port=port)
        try:
            assert server.process.wait(timeout=120) == 1
        finally:
            server.stop()
    log = server.log
    assert "Traceback" not in log and "KV cache" not in log  # the model never loaded
    [line] = error_lines(log)
    assert f"cannot listen on 127.0.0.1:{port}" in line


def test_a_wrong_model_is_one_line(tmp_path):
    server = ServerProcess(["--model", str(tmp_path / "no-such-model")], str(tmp_path / "log"))
    try:
        assert server.process.wait(timeout=120) == 1
    finally:
        server.stop()
    assert "Traceback" not in server.log
    [line] = error_lines(server.log)
    assert "could not start the server" in line and "no-such-model" in line


def test_ctrl_c_while_loading_is_one_line(tmp_path):
    server = ServerProcess(SERVER_ARGS, str(tmp_path / "log"))
    try:
        wait_until(lambda: "loading the embedded model" in server.log, 120, what="loading")
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=120) == 130
    finally:
        server.stop()
    assert "Traceback" not in server.log
    [line] = error_lines(server.log)
    assert "interrupted while loading" in line


def test_sigterm_ends_a_stream_left_past_the_shutdown_timeout(tmp_path):
    server = ServerProcess(SERVER_ARGS + ["--shutdown-timeout", "1"], str(tmp_path / "log"))
    events, started = [], threading.Event()

    def stream():
        with httpx.stream("POST", server.url + "/v1/completions", timeout=120, json={
                "prompt": "Once upon a time", "max_tokens": 480, "ignore_eos": True,
                "stream": True}) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(line[len("data: "):])
                    started.set()

    try:
        server.wait_ready()
        reader = threading.Thread(target=stream)
        reader.start()
        assert started.wait(timeout=120)
        server.process.send_signal(signal.SIGTERM)
        reader.join(timeout=60)
        assert not reader.is_alive()
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        server.stop()
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "overloaded" and "shutting down" in error["message"]
    assert 1 < len(events) - 2 < 480  # some text came, then the stream was stopped
    assert "Traceback" not in server.log
    wait_until(lambda: server.process.poll() is not None, 10, what="exit")
