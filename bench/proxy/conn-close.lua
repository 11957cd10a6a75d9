-- wrk: every request asks for "Connection: close", so each one is made on
-- a new connection (bench/proxy.sh, new connections per second).
wrk.headers["Connection"] = "close"
