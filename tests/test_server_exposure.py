"""`python -m experiments.server --host 0.0.0.0` (make server HOST=0.0.0.0) warns that the
unauthenticated server is open to the network and prints a URI other machines can use,
not http://0.0.0.0:<port> (issue 27, point 7). The server itself is replaced: nothing
is bound to the network here."""

import socket

import pytest

from experiments import server as command


class FakeServer:
    def __init__(self, *args, host="127.0.0.1", port=None, **kwargs) -> None:
        self.host, self.port = host, port

    def start(self) -> str:
        return f"http://{self.host}:{self.port}"

    def serve_until_interrupted(self) -> None:
        pass


@pytest.fixture
def served(monkeypatch, capsys):
    monkeypatch.setattr(command, "TrackingServer", FakeServer)

    def serve(*argv: str):
        command.main([*argv, "--port", "5634"])
        return capsys.readouterr()

    return serve


def test_the_wildcard_address_warns_and_prints_a_usable_uri(served):
    out = served("--host", "0.0.0.0")
    assert "WARNING" in out.err and "no authentication" in out.err
    assert "every network interface" in out.err
    [line] = [x for x in out.out.splitlines() if x.startswith("MLFLOW_TRACKING_URI=")]
    host = line.split("//", 1)[1].rsplit(":", 1)[0]
    assert host not in ("0.0.0.0", "localhost", "127.0.0.1")
    assert line.endswith(":5634")
    assert host in (socket.getfqdn(), socket.gethostname()) or host[0].isdigit()


def test_the_loopback_default_says_nothing_of_exposure(served):
    out = served()
    assert out.err == ""
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:5634" in out.out
