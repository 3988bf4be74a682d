-- wrk -s bench/post_1k.lua: every request a POST with a 1 KiB body (the suite's echo scenario).
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
