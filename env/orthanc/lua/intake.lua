-- Intake: DICOM C-STORE is accepted only from the hosts in ANONLIB_ALLOWED_SENDERS (IP
-- addresses, separated by commas or spaces; none means no DICOM store at all). Orthanc 1.10.1
-- answers the sender "Success" for an instance a filter drops, so each refusal is logged with
-- the caller's address and AE title (never a DICOM value). REST uploads are authenticated and
-- not filtered here. With a single allowed host, DicomCheckModalityHost already rejects other
-- hosts' associations; this filter is what enforces a list of several.

local allowed = {}
for host in string.gmatch(os.getenv("ANONLIB_ALLOWED_SENDERS") or "", "[^,%s]+") do
  allowed[host] = true
end

function ReceivedInstanceFilter(dicom, origin, info)
  if origin["RequestOrigin"] ~= "DicomProtocol" then
    return true
  end
  if allowed[origin["RemoteIp"]] then
    return true
  end
  print("anonlib: C-STORE refused from host " .. tostring(origin["RemoteIp"]) ..
        " (AET " .. tostring(origin["RemoteAet"]) .. "): not in ANONLIB_ALLOWED_SENDERS")
  return false
end
