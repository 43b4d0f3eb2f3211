// While accepted changes are being sent, reload the page every few seconds so their
// outcome (applied, conflict, failed) shows without a click; never while someone types.
(function () {
  var marker = document.querySelector("[data-refresh-seconds]");
  if (!marker) return;
  var seconds = Number(marker.getAttribute("data-refresh-seconds")) || 2;
  function tick() {
    var active = document.activeElement;
    if (active && active.form && active.value) {
      setTimeout(tick, seconds * 1000);
    } else {
      window.location.reload();
    }
  }
  setTimeout(tick, seconds * 1000);
})();
