-- wrk: a mix of chats (60%), history reads (30%) and uploads (10%, each a new document) for
-- the user of TOKEN. Statuses are counted per thread and summed in done().
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
    thread_id = thread_id + 1
    thread:set("tid", thread_id)
    table.insert(threads, thread)
end

function init(args)
    statuses = {}
    auth = "Bearer " .. os.getenv("TOKEN")
end

function request()
    counter = counter + 1
    local headers = { ["Authorization"] = auth, ["Content-Type"] = "application/json" }
    local slot = counter % 10
    if slot < 6 then
        return wrk.format("POST", "/api/chat/", headers,
            '{"message": "How many days of paid leave do employees get?"}')
    elseif slot < 9 then
        return wrk.format("GET", "/api/chat-history/?limit=50", headers)
    end
    local body = string.format(
        '{"title": "Note %d-%d", "content": "Load note %d of thread %d: the harbour crane %d lifts %d tonnes. It was serviced on day %d."}',
        tid, counter, counter, tid, counter, counter, counter % 28 + 1)
    return wrk.format("POST", "/api/documents/", headers, body)
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
    local total = {}
    for _, thread in ipairs(threads) do
        local counts = thread:get("statuses")
        for status, n in pairs(counts) do
            total[status] = (total[status] or 0) + n
        end
    end
    for status, n in pairs(total) do
        io.write(string.format("status %d: %d\n", status, n))
    end
end
