-- wrk script: POST a 256-byte JSON body (the benchmark's request).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local pad = string.rep("x", 256 - 40)
wrk.body = '{"event":"page_view","user":42,"pad":"' .. pad .. '"}'
assert(#wrk.body == 256, "body is " .. #wrk.body .. " bytes")
