"""Config.from_laravel_env: a Laravel .env read the way @laravel/echo-vue's configureEcho reads Vite's env."""

from __future__ import annotations

from pathlib import Path

import pytest

from quvel_store.container import Config, LaravelBroadcasting
from quvel_store.container._laravel_env import parse_dotenv
from quvel_store.errors import ConfigError

REVERB = """\
APP_NAME=Laravel
APP_URL=http://localhost:8000
BROADCAST_CONNECTION=reverb

REVERB_APP_ID=301
REVERB_APP_KEY=reverb-key
REVERB_APP_SECRET=reverb-secret
REVERB_HOST="localhost"
REVERB_PORT=8080
REVERB_SCHEME=http

VITE_REVERB_APP_KEY="${REVERB_APP_KEY}"
VITE_REVERB_HOST="${REVERB_HOST}"
VITE_REVERB_PORT="${REVERB_PORT}"
VITE_REVERB_SCHEME="${REVERB_SCHEME}"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def test_reverb_env_gives_the_ws_url_echo_would_use(tmp_path: Path) -> None:
    config = Config.from_laravel_env(_write(tmp_path, REVERB), env=False)
    assert config.ws_url == "ws://localhost:8080/app/reverb-key"
    assert config.api_url == "http://localhost:8000"  # where Laravel answers /broadcasting/auth
    assert config.get("broadcaster") == "reverb"
    assert "Laravel env file" in config.source_of("ws_url")
    assert config.get("app_secret") is None  # a front end's config never holds the secret


def test_vite_forms_come_first_for_the_front_end_and_last_for_the_back_end() -> None:
    values = {
        "BROADCAST_CONNECTION": "reverb",
        "REVERB_APP_KEY": "k",
        "REVERB_HOST": "reverb.internal",
        "VITE_REVERB_HOST": "ws.example.com",
    }
    front = LaravelBroadcasting.from_values(values)
    back = LaravelBroadcasting.from_values(values, for_server=True)
    assert (front.host, back.host) == ("ws.example.com", "reverb.internal")
    # echo-vue's defaults: scheme https, so TLS and port 443
    assert (front.scheme, front.port, front.tls) == ("https", 443, True)
    assert front.ws_url == "wss://ws.example.com:443/app/k"


def test_http_scheme_defaults_to_port_80() -> None:
    found = LaravelBroadcasting.from_values(
        {
            "BROADCAST_CONNECTION": "reverb",
            "VITE_REVERB_APP_KEY": "k",
            "VITE_REVERB_HOST": "h",
            "REVERB_SCHEME": "http",
        }
    )
    assert found.ws_url == "ws://h:80/app/k"


def test_pusher_cluster_without_a_host(tmp_path: Path) -> None:
    text = (
        "BROADCAST_DRIVER=pusher\nPUSHER_APP_ID=12\nPUSHER_APP_KEY=pk\nPUSHER_APP_SECRET=ps\n"
        'PUSHER_APP_CLUSTER=eu\nVITE_PUSHER_APP_KEY="${PUSHER_APP_KEY}"\nVITE_PUSHER_APP_CLUSTER="${PUSHER_APP_CLUSTER}"\n'
    )
    config = Config.from_laravel_env(_write(tmp_path, text), env=False)
    assert config.ws_url == "wss://ws-eu.pusher.com:443/app/pk"
    back = LaravelBroadcasting.from_env_file(tmp_path / ".env", for_server=True)
    assert (back.host, back.app_id, back.secret) == ("api-eu.pusher.com", "12", "ps")
    no_cluster = LaravelBroadcasting.from_values({"BROADCAST_CONNECTION": "pusher", "PUSHER_APP_KEY": "pk"})
    assert no_cluster.host == "ws-mt1.pusher.com"


def test_self_hosted_pusher_protocol_server_through_pusher_host() -> None:
    found = LaravelBroadcasting.from_values(
        {
            "BROADCAST_CONNECTION": "pusher",
            "PUSHER_APP_KEY": "app-key",
            "PUSHER_HOST": "127.0.0.1",
            "PUSHER_PORT": "6001",
            "PUSHER_SCHEME": "http",
        }
    )
    assert found.ws_url == "ws://127.0.0.1:6001/app/app-key"


def test_keyword_and_mapping_settings_win_over_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, REVERB)
    config = Config.from_laravel_env(
        path, {"locale": "fr"}, env={"QUVEL_WS_URL": "ws://env/app/x"}, api_url="http://x"
    )
    assert config.api_url == "http://x"
    assert config.locale == "fr"
    assert config.ws_url == "ws://localhost:8080/app/reverb-key"  # the file beats QUVEL_* variables


@pytest.mark.parametrize(
    ("text", "variable"),
    [
        ("APP_NAME=x\n", "BROADCAST_CONNECTION"),
        ("BROADCAST_CONNECTION=log\n", "BROADCAST_CONNECTION"),
        ("BROADCAST_DRIVER=redis\n", "BROADCAST_DRIVER"),
        ("BROADCAST_CONNECTION=reverb\nREVERB_HOST=h\n", "VITE_REVERB_APP_KEY"),
        ("BROADCAST_CONNECTION=reverb\nREVERB_APP_KEY=k\n", "VITE_REVERB_HOST"),
        ("BROADCAST_CONNECTION=reverb\nREVERB_APP_KEY=k\nREVERB_HOST=h\nREVERB_PORT=80a\n", "REVERB_PORT"),
        (
            "BROADCAST_CONNECTION=reverb\nREVERB_APP_KEY=k\nREVERB_HOST=h\nVITE_REVERB_PORT=0\n",
            "VITE_REVERB_PORT",
        ),
        (
            "BROADCAST_CONNECTION=reverb\nREVERB_APP_KEY=k\nREVERB_HOST=h\nREVERB_SCHEME=ftp\n",
            "REVERB_SCHEME",
        ),
        ("BROADCAST_CONNECTION=reverb\nREVERB_APP_KEY='a b'\nREVERB_HOST=h\n", "REVERB_APP_KEY"),
        ('BROADCAST_CONNECTION=reverb\nREVERB_APP_KEY="unclosed\n', "REVERB_APP_KEY"),
        ("BROADCAST_CONNECTION=reverb\nnot a line\n", "line 2"),
    ],
)
def test_bad_or_missing_values_name_the_variable(tmp_path: Path, text: str, variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Config.from_laravel_env(_write(tmp_path, text), env=False)


def test_a_missing_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the Laravel env file .*nope\.env"):
        Config.from_laravel_env(tmp_path / "nope.env", env=False)


def test_dotenv_syntax_as_phpdotenv_reads_it() -> None:
    values = parse_dotenv(
        '# comment\nexport A=1\nB = two words # trailing\nC=\'${A} literal\'\nD="x\\ny ${A} \\"q\\""\n'
        "E=${MISSING}end\nF=${FROM_ENV}\nG=\n",
        environ={"FROM_ENV": "env"},
    )
    assert values == {
        "A": "1",
        "B": "two words",
        "C": "${A} literal",
        "D": 'x\ny 1 "q"',
        "E": "end",
        "F": "env",
        "G": "",
    }
