"""`Mica(...).serve()`: Granian's Python API (`granian.server.Server`), served by the `mica` executable.

The constructor takes Granian's arguments, by the same names and in the same order; `serve()` runs
`mica` with the matching options as a child process, forwards the signals this process receives to
it, and ends as it ends. An argument left out (None) is not passed, so the server's own default
applies, which `MICA_*` / `GRANIAN_*` environment variables can set, as on the command line.

Hooks run in this process, at Granian's points, when the server asks for them: `on_startup` once
it has bound its socket and before its first workers, `on_reload` before workers are replaced
(SIGHUP, or a file change with `reload=True`), `on_shutdown` once the workers have stopped.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from enum import Enum

from mica import binary


class ConfigurationError(Exception):
    """An argument Mica cannot honour; the message says what differs from Granian."""


# Signals meant for the server: forwarded as they come. HUP runs the reload hooks first.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)

# The tables below cover every option of the command line (PythonPackageTests checks it).
# Arguments that are one option each: (argument, option). Booleans are `--x` / `--no-x`; lists repeat
# the option; everything else is its value as text (enums: their value; uds_permissions: octal).
# log_dictconfig (a dict) is passed as the JSON file serve() writes.
OPTIONS = (
    ("address", "--host"), ("port", "--port"), ("uds", "--uds"), ("uds_permissions", "--uds-permissions"),
    ("interface", "--interface"),
    ("workers", "--workers"), ("blocking_threads", "--blocking-threads"),
    ("blocking_threads_idle_timeout", "--blocking-threads-idle-timeout"),
    ("runtime_threads", "--runtime-threads"), ("runtime_blocking_threads", "--runtime-blocking-threads"),
    ("runtime_mode", "--runtime-mode"), ("loop", "--loop"), ("task_impl", "--task-impl"), ("http", "--http"),
    ("websockets", "--ws"), ("backlog", "--backlog"), ("backpressure", "--backpressure"),
    ("log_enabled", "--log"), ("log_level", "--log-level"), ("log_dictconfig", "--log-config"),
    ("log_access", "--access-log"),
    ("log_access_format", "--access-log-fmt"),
    ("ssl_cert", "--ssl-certificate"), ("ssl_key", "--ssl-keyfile"), ("ssl_key_password", "--ssl-keyfile-password"),
    ("ssl_protocol_min", "--ssl-protocol-min"), ("ssl_ca", "--ssl-ca"), ("ssl_crl", "--ssl-crl"),
    ("ssl_client_verify", "--ssl-client-verify"), ("url_path_prefix", "--url-path-prefix"),
    ("respawn_failed_workers", "--respawn-failed-workers"), ("respawn_interval", "--respawn-interval"),
    ("rss_sample_interval", "--rss-sample-interval"), ("rss_samples", "--rss-samples"),
    ("workers_lifetime", "--workers-lifetime"), ("workers_max_rss", "--workers-max-rss"),
    ("workers_kill_timeout", "--workers-kill-timeout"), ("factory", "--factory"), ("working_dir", "--working-dir"),
    ("env_files", "--env-files"), ("static_path_route", "--static-path-route"),
    ("static_path_mount", "--static-path-mount"), ("static_path_dir_to_file", "--static-path-dir-to-file"),
    ("static_path_expires", "--static-path-expires"), ("metrics_enabled", "--metrics"),
    ("metrics_scrape_interval", "--metrics-scrape-interval"), ("metrics_address", "--metrics-address"),
    ("metrics_port", "--metrics-port"), ("reload", "--reload"), ("reload_paths", "--reload-paths"),
    ("reload_ignore_dirs", "--reload-ignore-dirs"), ("reload_ignore_patterns", "--reload-ignore-patterns"),
    ("reload_ignore_paths", "--reload-ignore-paths"), ("reload_tick", "--reload-tick"),
    ("reload_ignore_worker_failure", "--reload-ignore-worker-failure"), ("process_name", "--process-name"),
    ("pid_file", "--pid-file"),
    # Mica's own
    ("python", "--python"), ("proxy_headers", "--proxy-headers"), ("forwarded_allow_ips", "--forwarded-allow-ips"),
    ("limit_request_line", "--limit-request-line"), ("limit_request_fields", "--limit-request-fields"),
    ("limit_request_fields_size", "--limit-request-fields-size"), ("limit_request_body", "--limit-request-body"),
    ("limit_concurrency", "--limit-concurrency"), ("timeout_keep_alive", "--timeout-keep-alive"),
    ("min_request_body_rate", "--min-request-body-rate"), ("min_response_rate", "--min-response-rate"),
)

HTTP1_OPTIONS = (
    ("header_read_timeout", "--http1-header-read-timeout"), ("keep_alive", "--http1-keep-alive"),
    ("max_buffer_size", "--http1-buffer-size"), ("pipeline_flush", "--http1-pipeline-flush"),
)

HTTP2_OPTIONS = (
    ("adaptive_window", "--http2-adaptive-window"),
    ("initial_connection_window_size", "--http2-initial-connection-window-size"),
    ("initial_stream_window_size", "--http2-initial-stream-window-size"),
    ("keep_alive_interval", "--http2-keep-alive-interval"), ("keep_alive_timeout", "--http2-keep-alive-timeout"),
    ("max_concurrent_streams", "--http2-max-concurrent-streams"), ("max_frame_size", "--http2-max-frame-size"),
    ("max_headers_size", "--http2-max-headers-size"), ("max_send_buffer_size", "--http2-max-send-buffer-size"),
)


def _option(option, value):
    """The command-line words for one option's value (none for None)."""
    if value is None:
        return []
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return [option if value else "--no-" + option[2:]]
    if isinstance(value, (list, tuple)):
        return [word for item in value for word in (option, os.fspath(item))]
    return [option, str(value) if not isinstance(value, os.PathLike) else os.fspath(value)]


class Mica:
    def __init__(
        self,
        target,
        address=None,
        port=None,
        uds=None,
        uds_permissions=None,
        interface=None,
        workers=None,
        blocking_threads=None,
        blocking_threads_idle_timeout=None,
        runtime_threads=None,
        runtime_blocking_threads=None,
        runtime_mode=None,
        loop=None,
        task_impl=None,
        http=None,
        websockets=None,
        backlog=None,
        backpressure=None,
        http1_settings=None,
        http2_settings=None,
        log_enabled=None,
        log_level=None,
        log_dictconfig=None,
        log_access=None,
        log_access_format=None,
        ssl_cert=None,
        ssl_key=None,
        ssl_key_password=None,
        ssl_protocol_min=None,
        ssl_ca=None,
        ssl_crl=None,
        ssl_client_verify=None,
        url_path_prefix=None,
        respawn_failed_workers=None,
        respawn_interval=None,
        rss_sample_interval=None,
        rss_samples=None,
        workers_lifetime=None,
        workers_max_rss=None,
        workers_kill_timeout=None,
        factory=None,
        working_dir=None,
        env_files=None,
        static_path_route=None,
        static_path_mount=None,
        static_path_dir_to_file=None,
        static_path_expires=None,
        metrics_enabled=None,
        metrics_scrape_interval=None,
        metrics_address=None,
        metrics_port=None,
        reload=None,
        reload_paths=None,
        reload_ignore_dirs=None,
        reload_ignore_patterns=None,
        reload_ignore_paths=None,
        reload_filter=None,
        reload_tick=None,
        reload_ignore_worker_failure=None,
        process_name=None,
        pid_file=None,
        *,
        python=None,
        proxy_headers=None,
        forwarded_allow_ips=None,
        limit_request_line=None,
        limit_request_fields=None,
        limit_request_fields_size=None,
        limit_request_body=None,
        limit_concurrency=None,
        timeout_keep_alive=None,
        min_request_body_rate=None,
        min_response_rate=None,
    ):
        if reload_filter is not None:
            raise ConfigurationError(
                "reload_filter: Mica's reloader runs in the server, not in Python, and takes no watchfiles "
                "filter; use reload_ignore_dirs, reload_ignore_patterns and reload_ignore_paths")
        self.target = target
        self.options = {name: value for name, value in locals().items() if name not in ("self", "target")}
        self.hooks_startup = []
        self.hooks_reload = []
        self.hooks_shutdown = []
        self.process = None
        self._early_signals = []

    # ------------------------------------------------------------------ hooks (Granian's)

    def on_startup(self, hook):
        self.hooks_startup.append(hook)
        return hook

    def on_reload(self, hook):
        self.hooks_reload.append(hook)
        return hook

    def on_shutdown(self, hook):
        self.hooks_shutdown.append(hook)
        return hook

    @staticmethod
    def _call_hooks(hooks):
        for hook in hooks:
            hook()

    # ------------------------------------------------------------------ the command line

    def command_line(self, log_config_path=None):
        """The arguments for `mica` (without the executable): options, then the target.
        `log_config_path`: the file holding log_dictconfig as JSON (serve() writes it)."""
        values = dict(self.options, log_dictconfig=log_config_path)
        if values["uds_permissions"] is not None:
            values["uds_permissions"] = format(values["uds_permissions"], "o")
        args = []
        for name, option in OPTIONS:
            args += _option(option, values[name])
        for settings, options in ((values["http1_settings"], HTTP1_OPTIONS), (values["http2_settings"], HTTP2_OPTIONS)):
            if settings is not None:
                for field, option in options:
                    args += _option(option, getattr(settings, field))
        return [*args, str(self.target)]

    # ------------------------------------------------------------------ serving

    def serve(self, spawn_target=None, target_loader=None, wrap_loader=True):
        """Runs the server until it stops: returns when it exited 0, else exits with its code."""
        if spawn_target is not None or target_loader is not None:
            raise ConfigurationError(
                "serve(spawn_target=, target_loader=): Mica's workers load the target themselves "
                "(module:attribute, factory=True for a factory); custom loaders are not supported")
        log_config = self._write_log_config()
        try:
            exit_code = self._run(log_config)
        finally:
            if log_config is not None:
                os.unlink(log_config)
        if exit_code:
            sys.exit(exit_code)

    def _write_log_config(self):
        """log_dictconfig (a dict) as the JSON file --log-config reads; None without one."""
        config = self.options["log_dictconfig"]
        if config is None:
            return None
        with tempfile.NamedTemporaryFile("w", prefix="mica-log-config-", suffix=".json", delete=False) as f:
            json.dump(config, f)
        return f.name

    def _run(self, log_config):
        args = self.command_line(log_config)
        path = binary.find()
        # The server asks for the hooks at Granian's points over this socket pair (MICA_HOOKS_FD; see
        # src/Mica/HookChannel.cs): a line naming the event, answered "ok" once its hooks have run.
        channel, servers_end = socket.socketpair()
        env = binary.environment(args)
        env["MICA_HOOKS_FD"] = str(servers_end.fileno())
        previous = {sig: signal.signal(sig, self._forward) for sig in FORWARDED_SIGNALS}
        try:
            # Its own session: a Ctrl-C in the terminal reaches this process only, which forwards it
            # once (a second SIGINT would tell the server to kill its workers at once).
            with servers_end:
                self.process = subprocess.Popen(["mica", *args], executable=path, env=env,
                                                pass_fds=(servers_end.fileno(),), start_new_session=True)
            for signum in self._early_signals:
                self.process.send_signal(signum)
            try:
                self._answer_hooks(channel)
            except BaseException:
                # A hook raised: the server must not outlive this process (and, the channel closed,
                # it no longer waits for an answer).
                channel.close()
                self.process.terminate()
                self.process.wait()
                raise
            code = self.process.wait()
        finally:
            channel.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 128 - code if code < 0 else code

    def _answer_hooks(self, channel):
        """Runs the hooks the server asks for, until it exits (the end of the channel)."""
        hooks = {b"startup": self.hooks_startup, b"reload": self.hooks_reload, b"shutdown": self.hooks_shutdown}
        with channel.makefile("rb") as events:
            for event in events:
                self._call_hooks(hooks.get(event.strip(), ()))
                channel.sendall(b"ok\n")

    def _forward(self, signum, frame):
        if self.process is None:            # not started yet: sent as soon as it is
            self._early_signals.append(signum)
        elif self.process.returncode is None:
            self.process.send_signal(signum)
