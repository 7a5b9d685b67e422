// The read-only process diagram of the task and instance pages (流程图), bundled by esbuild
// (npm run build → static/dist/diagram.js). bpmn-auto-layout is ESM-only, hence the bundle.
//
// <div class="diagram" data-diagram-src="/instances/7/diagram.json"></div>: the JSON carries
// {"xml": "...", "highlight": {"completed": [...], "active": [...], "waiting": [...], "error": [...]}}.
// Files without diagram interchange (no bpmndi:BPMNDiagram) are laid out automatically.
import NavigatedViewer from 'bpmn-js/lib/NavigatedViewer';
import { layoutProcess } from 'bpmn-auto-layout';

const KINDS = ['completed', 'active', 'waiting', 'error'];

export function hasDiagram(xml) {
  return /<([\w-]+:)?BPMNDiagram[\s>]/.test(xml) && /<([\w-]+:)?BPMNShape[\s>]/.test(xml);
}

function markFlows(registry, canvas, done) {
  // a sequence flow was taken when its source finished and its target was reached
  registry.filter((e) => e.type === 'bpmn:SequenceFlow').forEach((flow) => {
    const source = flow.businessObject.sourceRef && flow.businessObject.sourceRef.id;
    const target = flow.businessObject.targetRef && flow.businessObject.targetRef.id;
    if (done.completed.has(source) && done.reached.has(target)) canvas.addMarker(flow.id, 'hl-flow');
  });
}

// SpiffWorkflow does not need <incoming>/<outgoing> on flow nodes, but the layout follows them:
// fill them in from the sequence flows before laying out.
async function withFlowRefs(xml, moddle) {
  const { rootElement } = await moddle.fromXML(xml);
  const visit = (container) => {
    (container.flowElements || []).forEach((el) => {
      if (el.$type === 'bpmn:SequenceFlow' && el.sourceRef && el.targetRef) {
        const out = el.sourceRef.get('outgoing');
        const inc = el.targetRef.get('incoming');
        if (!out.includes(el)) out.push(el);
        if (!inc.includes(el)) inc.push(el);
      }
      if (el.flowElements) visit(el);
    });
  };
  (rootElement.rootElements || []).filter((e) => e.$type === 'bpmn:Process').forEach(visit);
  const { xml: fixed } = await moddle.toXML(rootElement);
  return fixed;
}

export async function render(container, xml, highlight = {}) {
  let laidOut = false;
  container.innerHTML = '';
  const viewer = new NavigatedViewer({ container });
  if (!hasDiagram(xml)) {
    xml = await layoutProcess(await withFlowRefs(xml, viewer.get('moddle')));
    laidOut = true;
  }
  await viewer.importXML(xml);
  const canvas = viewer.get('canvas');
  const registry = viewer.get('elementRegistry');
  const reached = new Set();
  KINDS.forEach((kind) => {
    (highlight[kind] || []).forEach((id) => {
      if (registry.get(id)) {
        canvas.addMarker(id, `hl-${kind}`);
        reached.add(id);
      }
    });
  });
  markFlows(registry, canvas, { completed: new Set(highlight.completed || []), reached });
  canvas.zoom('fit-viewport', 'auto');
  container.dataset.rendered = laidOut ? 'auto-layout' : 'di';
  return viewer;
}

async function load(container) {
  const res = await fetch(container.dataset.diagramSrc, { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
  const body = await res.json();
  return render(container, body.xml, body.highlight || {});
}

function start() {
  document.querySelectorAll('[data-diagram-src]').forEach((container) => {
    load(container).catch((err) => {
      container.dataset.rendered = 'error';
      container.textContent = `${container.dataset.errorText || 'diagram error'}: ${err.message}`;
      container.classList.add('diagram-error');
    });
  });
}

window.TongbanDiagram = { render, hasDiagram };
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
