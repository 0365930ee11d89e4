-- Every node: the reader user (ANONLIB_ORTHANC_READER_USER) may only read. Orthanc 1.10.1 has
-- no per-user rights, so this filter refuses (HTTP 403) any request of that user other than
-- GET and the two read-only POSTs the notebooks and the audit use (/tools/find, /tools/lookup).
-- Orthanc normalizes the URI before calling this (no trailing slash, no "//", no query string).
-- Anonymous requests never get here: authentication is always on (401 first).

local reader = os.getenv("ANONLIB_ORTHANC_READER_USER")
local readOnlyPosts = { ["/tools/find"] = true, ["/tools/lookup"] = true }

function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  if reader == nil or reader == "" or username ~= reader then
    return true
  end
  if method == "GET" then
    return true
  end
  return method == "POST" and readOnlyPosts[uri] == true
end
