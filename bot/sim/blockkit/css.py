"""The stylesheet of the rendered Block Kit (`CSS`): a small Slack-like look.

Only `bk-` classes, the ones the renderer emits; the workbench page inlines it ahead of its
own stylesheet.
"""

from __future__ import annotations

__all__ = ["CSS"]

CSS = """
.bk-message{display:flex;gap:8px;padding:8px 20px;font:15px/1.46668 -apple-system,
  BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d1c1d}
.bk-message:hover{background:#f8f8f8}
.bk-avatar{flex:none;width:36px;height:36px;border-radius:6px;background:#4a154b;color:#fff;
  display:flex;align-items:center;justify-content:center;font-weight:700}
.bk-message-body{flex:1;min-width:0}
.bk-meta{display:flex;gap:6px;align-items:baseline}
.bk-author{font-weight:900}
.bk-app-badge{font-size:10px;font-weight:700;background:#e8e8e8;color:#616061;padding:0 3px;
  border-radius:2px}
.bk-time,.bk-edited,.bk-ephemeral{font-size:12px;color:#616061}
.bk-block{margin:4px 0;overflow-wrap:anywhere}
.bk-header{font-size:18px;font-weight:900;margin:8px 0 4px}
.bk-section{display:flex;gap:12px;align-items:flex-start}
.bk-section-body{flex:1;min-width:0}
.bk-fields{display:grid;grid-template-columns:1fr 1fr;gap:8px 16px;margin-top:4px}
.bk-context{display:flex;flex-wrap:wrap;align-items:center;gap:4px 8px;font-size:13px;
  color:#616061}
.bk-context-image{width:20px;height:20px;border-radius:4px}
.bk-divider,.bk-block hr{border:0;border-top:1px solid #dddddd;margin:8px 0}
.bk-actions{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.bk-button{display:inline-flex;align-items:center;height:28px;padding:0 12px;font:inherit;
  font-size:13px;font-weight:700;border:1px solid #bbbabb;border-radius:4px;background:#fff;
  color:#1d1c1d;cursor:pointer;text-decoration:none}
.bk-button:hover{background:#f8f8f8}
.bk-primary{background:#007a5a;border-color:#007a5a;color:#fff}
.bk-primary:hover{background:#148567}
.bk-danger{background:#e01e5a;border-color:#e01e5a;color:#fff}
.bk-danger:hover{background:#e23067}
.bk-link{color:#1264a3;text-decoration:none}
.bk-link:hover{text-decoration:underline}
.bk-mention,.bk-channel{color:#1264a3;background:#e8f5fa;border-radius:3px;padding:0 2px}
.bk-code{font:12px Menlo,Consolas,monospace;color:#e01e5a;background:#f6f6f6;
  border:1px solid #dddddd;border-radius:3px;padding:1px 3px}
.bk-pre{font:12px/1.5 Menlo,Consolas,monospace;background:#f8f8f8;border:1px solid #dddddd;
  border-radius:4px;padding:8px;margin:4px 0;white-space:pre-wrap}
.bk-quote{border-left:4px solid #dddddd;margin:4px 0;padding:0 0 0 12px}
.bk-image{max-width:360px;max-height:360px;border-radius:8px}
.bk-image-element{width:88px;height:88px;border-radius:4px;object-fit:cover}
.bk-select,.bk-input,.bk-picker{font:inherit;font-size:14px;padding:4px 8px;
  border:1px solid #bbbabb;border-radius:4px;background:#fff}
.bk-input,.bk-multiline{width:100%;box-sizing:border-box}
.bk-overflow{position:relative;display:inline-block}
.bk-overflow>summary{list-style:none;cursor:pointer;border:1px solid #bbbabb;border-radius:4px;
  padding:0 8px}
.bk-overflow-menu{position:absolute;right:0;z-index:1;display:flex;flex-direction:column;
  background:#fff;border:1px solid #dddddd;border-radius:6px;padding:4px 0;min-width:160px}
.bk-overflow-item{font:inherit;text-align:left;border:0;background:none;padding:4px 16px;
  color:inherit;text-decoration:none;cursor:pointer}
.bk-overflow-item:hover{background:#1264a3;color:#fff}
.bk-choices{display:flex;flex-direction:column;gap:4px}
.bk-choice-description{display:block;color:#616061;font-size:13px;margin-left:22px}
.bk-label{display:block;font-weight:700;margin-bottom:4px}
.bk-optional,.bk-hint{color:#616061;font-weight:400;font-size:13px}
.bk-replies{display:inline-block;margin-top:4px;font-size:13px;font-weight:700;color:#1264a3;
  text-decoration:none}
.bk-view{font:15px/1.46668 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,
  sans-serif;color:#1d1c1d}
.bk-modal{width:520px;max-width:100%;background:#fff;border-radius:8px;
  box-shadow:0 0 0 1px rgba(29,28,29,.13),0 18px 48px rgba(0,0,0,.35)}
.bk-modal-header{display:flex;justify-content:space-between;align-items:center;
  padding:16px 24px;border-bottom:1px solid #dddddd}
.bk-modal-title{margin:0;font-size:22px;font-weight:900}
.bk-modal-x{border:0;background:none;font-size:20px;cursor:pointer}
.bk-modal-body{padding:16px 24px}
.bk-modal-footer{display:flex;justify-content:flex-end;gap:8px;padding:16px 24px;
  border-top:1px solid #dddddd}
.bk-home{padding:16px 24px}
.bk-unknown{color:#616061;background:#fff4e5;border:1px dashed #e8912d;border-radius:4px;
  padding:2px 6px;font-size:12px}
"""
