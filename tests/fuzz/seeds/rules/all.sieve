require ["fileinto","copy","variables","regex","body","relational","envelope","comparator-i;ascii-numeric"];
if header :matches "from" "*<*@*>" { set :upper "d" "${3}"; }
if address :domain :is "from" "b.example" { fileinto :copy "a.b"; }
if envelope :localpart :contains "from" "s" { fileinto "e"; }
if header :regex "subject" "^re: (.*)$" { set "s" "${1}"; }
if body :text :contains "IMS" { discard; }
if header :count "ge" :comparator "i;ascii-numeric" "to" "1" { keep; }
if string :value "gt" "${s}" "a" { stop; }
