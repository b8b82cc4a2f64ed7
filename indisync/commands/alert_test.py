"""`indisync alert-test`: send one test alarm to every URL of alerts.urls and say which answered
(URLs shown redacted: passwords, tokens and topics hidden)."""

from __future__ import annotations

import socket

from ..errors import ConfigError

HELP = "send a test alarm to every alerts.urls service and say which answered (exit 1 if any did not)"

EXAMPLE = "alerts: {urls: [\"ntfy://ntfy.sh/my-rig-topic\"]}"


def add_arguments(parser) -> None:
    parser.add_argument("--url", action="append", metavar="URL",
                        help="an apprise URL to test instead of the config's alerts.urls (repeatable)")


def run(args, cfg) -> int:
    from ..alerts import Alarm, Alerter
    from ..configtypes import ConfigValueError

    settings = cfg.alerts
    if args.url:
        import dataclasses

        settings = dataclasses.replace(settings, urls=list(args.url))
        try:
            settings.validate()
        except ConfigValueError as exc:
            raise ConfigError(f"--url: {exc}") from None
    if not settings.urls:
        raise ConfigError(f"{cfg.source}: alerts.urls is empty: there is nowhere to send an alarm. Add one apprise "
                          f"URL per service, for example {EXAMPLE} (ntfy), or mailtos://user:app-password@gmail.com "
                          "(e-mail); see README, Alarms")
    host = socket.gethostname()
    alarm = Alarm("alert_test", "info", "Test alarm",
                  f"A test from `indisync alert-test` on {host} ({cfg.node.name}). If you read this, alarms reach "
                  "you here.")
    print(f"sending a test alarm to {len(settings.urls)} service(s) (at most {settings.send_timeout_s:g} s) ...")
    answered = Alerter(settings, cfg.node.name).send_now(alarm)
    width = max(len(url) for url in answered)
    for url, ok in answered.items():
        print(f"  {url:<{width}}  {'answered' if ok else 'FAILED: no answer or refused (see the log above)'}")
    failed = [url for url, ok in answered.items() if not ok]
    if failed:
        print(f"{len(failed)} of {len(answered)} did not answer: check those URLs (apprise's wiki names each "
              f"service's fields: https://github.com/caronc/apprise/wiki) and this machine's network")
        return 1
    print(f"all {len(answered)} answered")
    return 0
