// The bpmn-js modeler page (一键拖拽部署): draw or edit a process, edit our extension fields
// (namespace urn:tongban:bpmn:1, prefix tb) in the side panel, deploy with one click.
// Attributes are set with modeling.updateProperties, the <tb:sla> child of
// bpmn:extensionElements with modeling.updateModdleProperties, so every edit can be undone.
(function () {
  'use strict';
  const cfg = JSON.parse(document.getElementById('modeler-config').textContent);
  const L = cfg.labels;
  const panel = document.getElementById('side-panel');
  const HUMAN = ['bpmn:UserTask', 'bpmn:ManualTask'];
  const ID_RE = /^[A-Za-z_][\w.-]*$/;
  let modeler, modeling, moddle, canvas, registry, selection;
  let current = null;

  function fmt(template, values) {
    return template.replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m));
  }

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === undefined || v === null || v === false) return;
      if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    });
    children.flat().forEach((c) => c !== null && c !== undefined && el.append(c));
    return el;
  }

  // ---- business objects -----------------------------------------------------------------
  function rootBo() {
    const root = canvas.getRootElement();
    let bo = root.businessObject;
    if (bo.$type === 'bpmn:Collaboration') {
      const p = (bo.participants || []).find((x) => x.processRef);
      bo = p ? p.processRef : bo;
    }
    return bo;
  }

  function extension(element, type) {
    const ext = element.businessObject.extensionElements;
    return ext ? (ext.values || []).find((v) => v.$type === type) : undefined;
  }

  function setAttr(element, name, value) {
    const props = {};
    props[name] = value === '' ? undefined : value;
    modeling.updateProperties(element, props);
  }

  function setProcessAttr(name, value) {
    // the process behind a collaboration is not a shape: edit it through its participant
    const root = canvas.getRootElement();
    const bo = rootBo();
    if (root.businessObject === bo) {
      setAttr(root, name, value);
    } else {
      const participant = registry.filter((e) => e.businessObject.processRef === bo)[0];
      if (participant) modeling.updateModdleProperties(participant, bo, { [name]: value === '' ? undefined : value });
    }
  }

  function setSla(element, values) {
    const bo = element.businessObject;
    const empty = !values.limit;
    let ext = bo.extensionElements;
    let sla = extension(element, 'tb:Sla');
    if (empty) {
      if (sla) modeling.updateModdleProperties(element, ext, { values: ext.values.filter((v) => v !== sla) });
      return;
    }
    if (!ext) {
      ext = moddle.create('bpmn:ExtensionElements', { values: [] });
      ext.$parent = bo;
      modeling.updateProperties(element, { extensionElements: ext });
    }
    if (!sla) {
      sla = moddle.create('tb:Sla');
      sla.$parent = ext;
      modeling.updateModdleProperties(element, ext, { values: [...(ext.values || []), sla] });
    }
    modeling.updateModdleProperties(element, sla, {
      limit: values.limit, unit: values.unit || 'workday', warn: values.warn || undefined,
    });
  }

  // ---- side panel -----------------------------------------------------------------------
  function field(label, id, value, onchange, extra) {
    const input = h('input', Object.assign({ id, name: id, value: value || '', type: 'text' }, extra || {}));
    input.addEventListener('change', () => onchange(input.value.trim(), input));
    return h('label', {}, label, input);
  }

  function idField(element, bo, label) {
    return field(label, 'prop-id', bo.id, (value, input) => {
      input.setCustomValidity('');
      if (value === bo.id) return;
      if (!ID_RE.test(value)) { input.setCustomValidity(L.badId); input.reportValidity(); return; }
      if (registry.get(value) || (value !== bo.id && rootBo().id === value)) {
        input.setCustomValidity(L.duplicateId); input.reportValidity(); return;
      }
      if (element) setAttr(element, 'id', value); else setProcessAttr('id', value);
    });
  }

  function render() {
    panel.replaceChildren();
    const element = current;
    const isRoot = !element || element === canvas.getRootElement();
    const bo = isRoot ? rootBo() : element.businessObject;
    const type = bo.$type;
    panel.append(h('h2', { text: L.types[type] || type.replace('bpmn:', '') }));
    panel.dataset.type = type;
    panel.dataset.element = bo.id || '';
    const general = h('fieldset', {}, h('legend', { text: L.general }));
    if (isRoot) {
      general.append(idField(null, bo, L.key));
      general.append(field(L.name, 'prop-name', bo.name, (v) => setProcessAttr('name', v)));
      const exec = h('input', { type: 'checkbox', id: 'prop-executable', checked: bo.isExecutable ? true : false });
      exec.addEventListener('change', () => setProcessAttr('isExecutable', exec.checked));
      general.append(h('label', { class: 'check' }, exec, ' ', L.executable));
      panel.append(general);
      return;
    }
    general.append(idField(element, bo, L.id));
    general.append(field(L.name, 'prop-name', bo.name, (v) => setAttr(element, 'name', v)));
    panel.append(general);

    if (type === 'bpmn:Lane') {
      panel.append(h('fieldset', {}, h('legend', { text: L.assignment }),
        field(L.laneGroup, 'tb-group', bo.get('tb:group'), (v) => setAttr(element, 'tb:group', v),
          { list: 'group-names' })));
    }
    const pulls = ((bo.extensionElements && bo.extensionElements.values) || []).filter((v) => v.$type === 'tb:Data');
    if (pulls.length) {
      // data pulls (数据调取) are shown, not edited here: they carry purpose and legal basis
      panel.append(h('fieldset', { id: 'tb-data' }, h('legend', { text: L.dataPulls }),
        h('ul', { class: 'compact' }, pulls.map((d) => h('li', {},
          h('code', { text: `${d.connector || ''}.${d.operation || ''}` }), ' ', d.purpose || '',
          h('br'), h('span', { class: 'muted', text: (d.output || []).map((o) => o.as || o.name).join(', ') }))))));
    }
    if (!HUMAN.includes(type)) return;

    panel.append(h('fieldset', {}, h('legend', { text: L.assignment }),
      field(L.candidateGroups, 'tb-candidateGroups', bo.get('tb:candidateGroups'),
        (v) => setAttr(element, 'tb:candidateGroups', v), { list: 'group-names' }),
      field(L.candidateUsers, 'tb-candidateUsers', bo.get('tb:candidateUsers'),
        (v) => setAttr(element, 'tb:candidateUsers', v)),
      field(L.assignee, 'tb-assignee', bo.get('tb:assignee'), (v) => setAttr(element, 'tb:assignee', v))));

    const opinion = h('input', { type: 'checkbox', id: 'tb-opinionRequired',
                                 checked: bo.get('tb:opinionRequired') === 'true' });
    opinion.addEventListener('change', () =>
      setAttr(element, 'tb:opinionRequired', opinion.checked ? 'true' : ''));
    panel.append(h('fieldset', {}, h('legend', { text: L.form }),
      field(L.formKey, 'tb-formKey', bo.get('tb:formKey'), (v) => setAttr(element, 'tb:formKey', v)),
      field(L.outcomes, 'tb-outcomes', bo.get('tb:outcomes'), (v) => setAttr(element, 'tb:outcomes', v)),
      h('label', { class: 'check' }, opinion, ' ', L.opinionRequired)));

    const sla = extension(element, 'tb:Sla') || {};
    const limit = h('input', { type: 'number', min: '0', step: 'any', id: 'tb-sla-limit', value: sla.limit || '' });
    const unit = h('select', { id: 'tb-sla-unit' },
      ['workday', 'day', 'hour'].map((u) => h('option', { value: u, text: L[u], selected: (sla.unit || 'workday') === u })));
    const warn = h('input', { type: 'number', min: '0', max: '1', step: '0.05', id: 'tb-sla-warn', value: sla.warn || '' });
    const save = () => setSla(element, { limit: limit.value.trim(), unit: unit.value, warn: warn.value.trim() });
    [limit, unit, warn].forEach((i) => i.addEventListener('change', save));
    panel.append(h('fieldset', {}, h('legend', { text: L.sla }),
      h('div', { class: 'sla-row' }, h('label', {}, L.limit, limit), h('label', {}, L.unit, unit)),
      h('label', {}, L.warn, warn)));
  }

  // ---- problems and deploy ----------------------------------------------------------------
  function clearMarkers() {
    registry.forEach((e) => canvas.removeMarker(e, 'hl-error'));
  }

  function showResult(message, isError) {
    const box = document.getElementById('result-panel');
    const result = document.getElementById('deploy-result');
    box.hidden = false;
    result.className = isError ? 'error' : 'ok';
    result.replaceChildren(...(Array.isArray(message) ? message : [message]));
  }

  function focusElement(id) {
    const el = id && registry.get(id);
    if (!el || el === canvas.getRootElement()) return false;
    selection.select(el);
    if (canvas.scrollToElement) canvas.scrollToElement(el);
    return true;
  }

  function showProblems(problems) {
    const table = document.getElementById('modeler-problems');
    const body = table.querySelector('tbody');
    body.replaceChildren();
    clearMarkers();
    problems.forEach((p) => {
      const row = h('tr', { class: 'problem', 'data-element-id': p.element_id || '' },
        h('td', {}, h('code', { class: 'problem-element', text: p.element_id || '—' })),
        h('td', { class: 'problem-line', text: p.line || '—' }),
        h('td', { class: 'problem-message', text: p.message }));
      if (p.element_id && registry.get(p.element_id)) {
        canvas.addMarker(p.element_id, 'hl-error');
        row.style.cursor = 'pointer';
        row.addEventListener('click', () => focusElement(p.element_id));
      }
      body.append(row);
    });
    table.hidden = problems.length === 0;
    const first = problems.find((p) => p.element_id && registry.get(p.element_id));
    if (first) focusElement(first.element_id);
  }

  async function deploy() {
    const button = document.getElementById('deploy-button');
    button.disabled = true;
    showResult(L.deploying, false);
    document.getElementById('modeler-problems').hidden = true;
    try {
      const { xml } = await modeler.saveXML({ format: true });
      const res = await tongban.post(cfg.deploy_url, { xml, filename: cfg.filename, base_id: cfg.base_id });
      if (res.ok && res.data.ok) {
        clearMarkers();
        const mine = res.data.deployed.find((d) => d.key === rootBo().id) || res.data.deployed[0];
        const text = fmt(mine.created ? L.deployed : L.unchanged, { key: mine.key, version: mine.version });
        showResult([text, ' ', h('a', { href: mine.url, id: 'deployed-link', text: L.viewVersion })], false);
        document.getElementById('deploy-result').dataset.definitionId = mine.id;
        document.getElementById('deploy-result').dataset.version = mine.version;
        cfg.base_id = mine.id;
        history.replaceState(null, '', cfg.modeler_url + '/' + mine.id);
      } else if (res.data && res.data.problems) {
        showResult(fmt(L.problems, { n: res.data.problems.length }), true);
        showProblems(res.data.problems);
      } else {
        showResult(L.failed + ((res.data && res.data.message) || res.status), true);
      }
    } catch (err) {
      showResult(L.failed + err.message, true);
    } finally {
      button.disabled = false;
    }
  }

  async function download() {
    const { xml } = await modeler.saveXML({ format: true });
    const a = h('a', { href: URL.createObjectURL(new Blob([xml], { type: 'application/xml' })),
                       download: cfg.filename || 'process.bpmn' });
    document.body.append(a);
    a.click();
    a.remove();
  }

  async function withDiagram(xml) {
    // a file without diagram interchange (DI) is laid out by the shared diagram bundle
    // (static/dist/diagram.js, bpmn-auto-layout) and read back with its new DI
    if (!window.TongbanDiagram || window.TongbanDiagram.hasDiagram(xml)) return xml;
    const box = h('div', { style: 'position:absolute;left:-10000px;top:0;width:800px;height:600px' });
    document.body.append(box);
    try {
      const viewer = await window.TongbanDiagram.render(box, xml, {});
      const out = (await viewer.saveXML({ format: true })).xml;
      viewer.destroy();
      return out;
    } finally {
      box.remove();
    }
  }

  async function start() {
    const descriptor = await (await fetch(cfg.moddle_url, { credentials: 'same-origin' })).json();
    modeler = new BpmnJS({ container: '#canvas', keyboard: { bindTo: document },
                           moddleExtensions: { tb: descriptor } });
    window.tongbanModeler = modeler;
    modeling = modeler.get('modeling');
    moddle = modeler.get('moddle');
    canvas = modeler.get('canvas');
    registry = modeler.get('elementRegistry');
    selection = modeler.get('selection');
    try {
      const { warnings } = await modeler.importXML(await withDiagram(cfg.xml));
      if (warnings && warnings.length) {
        showResult([fmt(L.importWarnings, { n: warnings.length }),
          h('ul', {}, warnings.map((w) => h('li', { text: String(w.message || w).split('\n')[0] })))], true);
      }
    } catch (err) {
      showResult(L.importFailed + err.message, true);
      return;
    }
    canvas.zoom('fit-viewport', 'auto');
    modeler.on('selection.changed', (e) => { current = e.newSelection.length === 1 ? e.newSelection[0] : null; render(); });
    modeler.on('elements.changed', (e) => {
      // re-render after an undo/redo or an edit elsewhere, but not while typing in the panel
      if (document.activeElement && panel.contains(document.activeElement)) return;
      if (!current || e.elements.includes(current) || e.elements.includes(canvas.getRootElement())) render();
    });
    render();
    document.getElementById('deploy-button').addEventListener('click', deploy);
    document.getElementById('download-button').addEventListener('click', download);
    document.body.dataset.modelerReady = 'true';
  }

  document.addEventListener('DOMContentLoaded', start);
})();
