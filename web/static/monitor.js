// Monitor dashboard (电子监察): the weekly trend chart (ECharts) and the heat map of handling time
// on the process diagram (bpmn-js, via window.TongbanDiagram from static/dist/diagram.js).
(function () {
  'use strict';

  function trendChart() {
    const el = document.getElementById('trend-chart');
    const data = document.getElementById('sla-data');
    if (!el || !data || !window.echarts) return;
    const { trend, labels } = JSON.parse(data.textContent);
    const chart = echarts.init(el);
    chart.setOption({
      tooltip: { trigger: 'axis' }, legend: { top: 0 },
      grid: { left: 8, right: 16, bottom: 8, top: 36, containLabel: true },
      xAxis: { type: 'category', data: trend.weeks },
      yAxis: { type: 'value', minInterval: 1 },
      series: [
        { name: labels.yellow, type: 'bar', stack: 'cards', data: trend.yellow, itemStyle: { color: '#f9a825' } },
        { name: labels.red, type: 'bar', stack: 'cards', data: trend.red, itemStyle: { color: '#c62828' } },
        { name: labels.completed, type: 'line', data: trend.completed, itemStyle: { color: '#2e7d32' } },
        { name: labels.completed_late, type: 'line', data: trend.completed_late, itemStyle: { color: '#6a1b9a' } },
      ],
    });
    window.addEventListener('resize', () => chart.resize());
    el.dataset.ready = 'true';
  }

  function fmt(v) {
    return v === null || v === undefined ? '—' : String(v);
  }

  async function heatmap(container, key) {
    container.dataset.rendered = '';
    const res = await fetch(`${container.dataset.src}?process=${encodeURIComponent(key)}`, { credentials: 'same-origin' });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    const body = await res.json();
    const viewer = await window.TongbanDiagram.render(container, body.xml, {});
    const overlays = viewer.get('overlays');
    const registry = viewer.get('elementRegistry');
    const top = body.max_avg_hours || 0;
    let shown = 0;
    Object.entries(body.steps).forEach(([id, step]) => {
      const el = registry.get(id);
      if (!el) return;
      const ratio = top > 0 && step.avg_hours ? step.avg_hours / top : 0;
      const box = document.createElement('div');
      box.className = 'sla-heat';
      box.dataset.step = id;
      box.dataset.avg = fmt(step.avg_hours);
      box.style.width = `${el.width}px`;
      box.style.height = `${el.height}px`;
      box.style.background = `rgba(198, 40, 40, ${(0.12 + 0.6 * ratio).toFixed(2)})`;
      const label = document.createElement('span');
      label.className = 'sla-heat-label';
      const parts = step.count ? [`${body.labels.avg} ${fmt(step.avg_hours)}h`, `P90 ${fmt(step.p90_hours)}h`,
        `${step.count}${body.labels.count}`] : [];
      if (step.overdue) parts.push(`${body.labels.overdue} ${step.overdue}`);
      label.textContent = parts.join(' · ');
      box.appendChild(label);
      box.title = label.textContent;
      overlays.add(id, 'sla-heat', { position: { top: 0, left: 0 }, html: box });
      shown += 1;
    });
    container.dataset.rendered = 'heatmap';
    container.dataset.overlays = String(shown);
  }

  function startHeatmap() {
    const container = document.getElementById('heatmap');
    const select = document.getElementById('heatmap-process');
    if (!container || !select || !select.value) return;
    const run = () => heatmap(container, select.value).catch((err) => {
      container.dataset.rendered = 'error';
      container.textContent = `${container.dataset.errorText || 'diagram error'}: ${err.message}`;
      container.classList.add('diagram-error');
    });
    select.addEventListener('change', () => {
      container.classList.remove('diagram-error');
      run();
    });
    run();
  }

  function start() {
    trendChart();
    startHeatmap();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
}());
