require ["vnd.vmingest","fileinto"];
if ims :matches "station" "AR*" { label "x"; quarantine "q"; }
if not anyof (false, ims "msg_type" "DATA") { fileinto "n"; }
