// Designer pages: draw each .bpmn-view with the bpmn-js viewer and mark the elements that have
// problems (red marker + "!" overlay). Clicking a problem row centres its element.
(function () {
  'use strict';
  const viewers = [];

  function fallback(container, err) {
    const p = document.createElement('p');
    p.className = 'muted cannot-draw';
    p.textContent = '无法绘制流程图：' + ((err && err.message) || err) + '；请按报告中的行号查看源码。';
    container.replaceWith(p);
  }

  async function draw(container) {
    const source = document.getElementById(container.dataset.xml);
    if (!source) return;
    const xml = JSON.parse(source.textContent);
    const highlight = JSON.parse(container.dataset.highlight || '[]');
    let viewer;
    try {
      if (window.TongbanDiagram) {
        // the shared diagram bundle (static/dist/diagram.js) also lays out files without DI
        viewer = await window.TongbanDiagram.render(container, xml, {});
      } else {
        viewer = new BpmnJS({ container });
        await viewer.importXML(xml);
      }
    } catch (err) {
      if (viewer) viewer.destroy();
      fallback(container, err);
      return;
    }
    const canvas = viewer.get('canvas');
    const registry = viewer.get('elementRegistry');
    const overlays = viewer.get('overlays');
    canvas.zoom('fit-viewport', 'auto');
    const missing = [];
    highlight.forEach((id) => {
      const el = registry.get(id);
      if (!el || el === canvas.getRootElement()) { missing.push(id); return; }
      canvas.addMarker(id, 'hl-error');
      const badge = document.createElement('div');
      badge.className = 'problem-badge';
      badge.title = id;
      badge.textContent = '!';
      overlays.add(id, 'problem', { position: { top: -10, right: 10 }, html: badge });
    });
    container.dataset.drawn = 'true';
    container.dataset.marked = highlight.filter((id) => !missing.includes(id)).join(',');
    viewers.push({ container, viewer });
  }

  function focus(id) {
    viewers.forEach(({ viewer }) => {
      const el = viewer.get('elementRegistry').get(id);
      if (!el) return;
      const canvas = viewer.get('canvas');
      viewer.get('elementRegistry').forEach((e) => canvas.removeMarker(e, 'hl-focus'));
      canvas.addMarker(el, 'hl-focus');
      if (canvas.scrollToElement) canvas.scrollToElement(el);
    });
  }

  document.addEventListener('DOMContentLoaded', () => {
    document.querySelectorAll('.bpmn-view').forEach(draw);
    document.querySelectorAll('tr.problem[data-element-id]').forEach((row) => {
      if (!row.dataset.elementId) return;
      row.style.cursor = 'pointer';
      row.addEventListener('click', () => focus(row.dataset.elementId));
    });
  });
})();
