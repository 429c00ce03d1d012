import sys, time, json, glob, os
import numpy as np, soundfile as sf, torch
sys.path.insert(0, '.')
from poscuda_cli.key import Key
from poscuda_cli.params import Params, PRESETS
from poscuda_cli.transform import protect_clip
from poscuda_cli import features, attackers
torch.set_num_threads(2)
root='/work/shared/data/fsdd'
files=sorted(glob.glob(root+'/*/*.wav'))
clips=[]; labels=[]; test=[]
for f in files:
    x,sr=sf.read(f,dtype='int16',always_2d=True)
    lab=os.path.basename(os.path.dirname(f)); idx=int(f.rsplit('_',1)[1][:-4])
    clips.append(x); labels.append(int(lab)); test.append(idx<5)
labels=np.array(labels); test=np.array(test)
SR=8000; L=8000
def fix(xs):
    out=np.zeros((len(xs),L),np.float32)
    for i,x in enumerate(xs):
        v=x[:L,0].astype(np.float32)/32768; out[i,:len(v)]=v
    return out
def prep(w,kind):
    if kind=='wave': return w
    f = features.mfcc(w,SR) if kind=='mfcc' else features.log_mel(w,SR)
    return f.astype(np.float32)
def run(params, models, epochs=12, shift=0.0, secret=b'\x01'*32):
    key=Key(secret, params) if params else None
    tr=[]; snrs=[]
    for x,l,t in zip(clips,labels,test):
        if t: continue
        if key:
            y=protect_clip(x,key.label_plan(str(l)),SR).audio
            e=((y.astype(float)-x)**2).sum(); s=(x.astype(float)**2).sum()
            snrs.append(10*np.log10(s/max(e,1e-9)))
            tr.append(y)
        else: tr.append(x)
    wtr=fix(tr); wte=fix([c for c,t in zip(clips,test) if t])
    ytr=labels[~test]; yte=labels[test]
    res={'snr':float(np.mean(snrs)) if snrs else None}
    for m in models:
        kind=attackers.INPUTS[m]
        a,b=prep(wtr,kind),prep(wte,kind)
        if kind!='wave':
            mu=a.mean((0,1)); sd=a.std((0,1))+1e-6; a=(a-mu)/sd; b=(b-mu)/sd
        t0=time.time()
        tra,tea=attackers.train_and_test(m,a,ytr,b,yte,10,epochs=epochs,shift=shift)
        res[m]=round(tea*100,1); res[m+'_train']=round(tra*100,1); res[m+'_s']=round(time.time()-t0)
    return res
if __name__=='__main__':
    configs=json.loads(sys.argv[1]); models=sys.argv[2].split(','); epochs=int(sys.argv[3]); shift=float(sys.argv[4]) if len(sys.argv)>4 else 0.0
    for name,p in configs:
        params = None if p is None else Params.from_dict({**Params().to_dict(), **p})
        r=run(params,models,epochs,shift); print(json.dumps({'name':name,**r}),flush=True)
