-- wrk script for the hold path: each thread drives its own fans (tokens from
-- FANS_FILE, one per line, split between threads); each request alternately
-- adds one Pista ticket to, or removes it from, the next fan's cart, so every
-- request is a durable state change. With DELAY_MS set, each connection
-- waits that long between requests: a paced, open load (below saturation)
-- whose latency is what a fan sees at that rate.
local tokens = {}
local turn = {}
local next_fan = 1
local thread_counter = 0

function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("thread_index", thread_counter)
end

function init(args)
  local all = {}
  for line in io.lines(os.getenv("FANS_FILE")) do table.insert(all, line) end
  local threads = tonumber(os.getenv("THREADS") or "2")
  for i, token in ipairs(all) do
    if (i % threads) == (thread_index % threads) then table.insert(tokens, token) end
  end
end

local add = '{"items":[{"ticket_type":0,"quantity":1}]}'

function request()
  local i = next_fan
  next_fan = (next_fan % #tokens) + 1
  turn[i] = not turn[i]
  local method = turn[i] and "POST" or "DELETE"
  return wrk.format(method, "/api/events/0/cart/items",
    { ["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json" }, add)
end

local pace = tonumber(os.getenv("DELAY_MS") or "0")
if pace > 0 then
  function delay() return pace end
end
