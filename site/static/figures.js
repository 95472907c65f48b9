// Draws every plotly figure of the page with the page's one plotly.js (static/plotly.min.js):
// each figure is a <script type="application/vnd.plotly.v1+json"> right after its empty <div>.
document.querySelectorAll('script[type="application/vnd.plotly.v1+json"]').forEach(function (script) {
  var figure = JSON.parse(script.textContent);
  var config = Object.assign({responsive: true, displaylogo: false}, figure.config || {});
  Plotly.newPlot(script.previousElementSibling, figure.data || [], figure.layout || {}, config);
});
