# a script with a typo on line 4, column 5
require ["fileinto"];
if header :contains "subject" "phd" {
    filein "rn.phd";
}
