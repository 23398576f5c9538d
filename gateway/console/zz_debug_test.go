package console_test
import ("testing";"github.com/codevector/codevector/gateway/web/webtest")
func TestDebugArtifact(t *testing.T){
	_, ctx, _ := devStack(t)
	createInPage(t, ctx, "laptop", "30")
	t.Log(webtest.Eval[string](t, ctx, `(()=>{const out=[];for (const y of [600,604,607,610]) for (const x of [390,400,410,420]) {const e=document.elementFromPoint(x,y); out.push(x+","+y+":"+e.tagName+"#"+e.id+"."+e.className)}; return out.join(" | ")})()`))
	t.Log(webtest.Eval[string](t, ctx, `JSON.stringify(document.getElementById("reveal-step").getBoundingClientRect())+JSON.stringify(document.getElementById("create-dialog").getBoundingClientRect())`))
}
