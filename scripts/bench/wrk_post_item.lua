-- wrk script of `make bench`'s HTTP section (scripts/bench/run.py): every request is
-- `POST /api/v1/items/{id}` (the id in the URL wrk is given) with a small JSON body, as
-- kontiki-rt/examples/http_demo.rs serves it on both of its ports.
wrk.method = "POST"
wrk.body = '{"name": "widget", "qty": 3}'
wrk.headers["Content-Type"] = "application/json"
