// The URL `voucherhook serve` prints carries the admin token in its fragment
// (/console/login#token=...), which browsers never send to a server nor put in a Referer.
// Read it, take it out of the address bar and history, and log in with it.
(function () {
  var match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (!match) return;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  var form = document.getElementById("login");
  form.elements.token.value = decodeURIComponent(match[1]);
  form.submit();
})();
